"""Python tools that call back into tools the Rust host registered."""

from typing import Any, Dict, List

from snakepit_bridge import BaseAdapter, tool


class BidirectionalAdapter(BaseAdapter):
    @tool(description="Score each word with the host's `word_score` tool and return the best.")
    def best_word(self, words: List[str]) -> Dict[str, Any]:
        ctx = self.session_context
        scores = {w: ctx.call_elixir_tool("word_score", {"word": w}) for w in words}
        best = max(scores, key=scores.get)
        return {"best": best, "scores": scores}

    @tool(description="List the tools the host exposes to Python.")
    def host_tools(self) -> List[str]:
        return sorted(self.session_context.elixir_tools)
