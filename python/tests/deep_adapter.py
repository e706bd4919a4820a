"""A test adapter whose tools build deeply nested values and check annotated argument types."""

from typing import Any, Dict, List, Optional

from snakepit_bridge import BaseAdapter, tool


class DeepAdapter(BaseAdapter):
    @tool
    def deep(self, n: int) -> Any:
        """Return a list nested `n` levels deep (built without recursion)."""
        value: Any = 0
        for _ in range(n):
            value = [value]
        return value

    @tool
    def typed(
        self,
        count: int,
        ratio: float = 1.0,
        name: str = "x",
        flag: bool = False,
        items: Optional[List[int]] = None,
        options: Dict[str, Any] = None,
    ) -> Dict[str, Any]:
        return {"count": count, "ratio": ratio, "name": name, "flag": flag, "items": items, "options": options}
