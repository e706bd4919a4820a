"""The adapter example of the top-level README runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_adapter_example_defines_working_tools():
    text = README.read_text()
    block = re.search(r"```python\n(# myapp/adapters.py\n.*?)```", text, re.S)
    assert block, "the README's adapter example is a ```python block starting with # myapp/adapters.py"
    namespace = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    adapter = namespace["MyAdapter"]()
    adapter.initialize()
    tools = adapter.get_tools()
    assert set(tools) >= {"predict", "progress"}
    assert adapter.predict("good day, bad night bad", top_k=2) == {"labels": ["positive", "negative"]}
    assert list(adapter.progress(steps=2))[:2] == [{"step": 0}, {"step": 1}]
    adapter.cleanup()
