"""``RegisterTools`` requests for an adapter's tools (the adapter hooks ``register_with_session``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, List

if TYPE_CHECKING:
    from ._proto import snakepit_bridge_pb2 as pb

log = logging.getLogger("snakepit_bridge.adapter")


def registration_request(adapter: Any, session_id: str, worker_id: str = "") -> pb.RegisterToolsRequest:
    """The ``RegisterToolsRequest`` announcing ``adapter``'s tools."""
    from ._compat import adapter_tools
    from ._proto import snakepit_bridge_pb2 as pb
    from ._servicer import tool_spec_message

    request = pb.RegisterToolsRequest(session_id=session_id, worker_id=worker_id or f"python-{id(adapter)}")
    for spec in adapter_tools(adapter).values():
        # ToolRegistration has ToolSpec's fields and numbers: convert through the wire form.
        request.tools.add().ParseFromString(tool_spec_message(spec).SerializeToString())
    return request


def register_tools(adapter: Any, session_id: str, stub: Any) -> List[str]:
    request = registration_request(adapter, session_id)
    try:
        response = stub.RegisterTools(request, timeout=5.0)
    except Exception as exc:  # noqa: BLE001 - logged and reported as nothing registered
        log.error("registering tools of %s failed: %s", type(adapter).__name__, exc)
        return []
    return _accepted(adapter, response)


async def register_tools_async(adapter: Any, session_id: str, stub: Any) -> List[str]:
    request = registration_request(adapter, session_id)
    try:
        response = await stub.RegisterTools(request, timeout=5.0)
    except Exception as exc:  # noqa: BLE001 - logged and reported as nothing registered
        log.error("registering tools of %s failed: %s", type(adapter).__name__, exc)
        return []
    return _accepted(adapter, response)


def _accepted(adapter: Any, response: Any) -> List[str]:
    if not response.success:
        log.error("the host refused the tools of %s: %s", type(adapter).__name__, response.error_message)
        return []
    return sorted(response.tool_ids.keys()) or [t.name for t in registration_request(adapter, "").tools]
