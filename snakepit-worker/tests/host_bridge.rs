//! The host bridge server: token required, host tools listed and callable.

#![allow(clippy::unwrap_used)]

use serde_json::json;
use snakepit_proto::pb;
use snakepit_worker::host_bridge::{HostBridge, HostTool, HostTools};
use snakepit_worker::RunContext;

async fn client(path: std::path::PathBuf) -> pb::BridgeServiceClient<tonic::transport::Channel> {
    let channel = snakepit_worker::unix_channel(path).await.unwrap();
    pb::BridgeServiceClient::new(channel)
}

fn with_token<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert(snakepit_proto::TOKEN_METADATA_KEY, token.parse().unwrap());
    req
}

#[tokio::test]
async fn host_bridge_requires_the_token_and_serves_exposed_tools() {
    let run = RunContext::new().unwrap();
    let tools = HostTools::default();
    tools.register(HostTool::new("double", "Double x.", |c| async move {
        Ok(json!(c.args["x"].as_i64().unwrap_or(0) * 2))
    }));
    tools.register(HostTool::new("secret", "Not for Python.", |_| async { Ok(json!(1)) }).hidden());
    let bridge = HostBridge::start(&run, tools).await.unwrap();
    let path = std::path::PathBuf::from(bridge.address().strip_prefix("unix:").unwrap());
    assert!(path.starts_with(run.dir()));
    let mut c = client(path).await;

    let status = c.ping(pb::PingRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let status = c
        .ping(with_token(pb::PingRequest::default(), "wrong"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    let listed = c
        .get_exposed_elixir_tools(with_token(
            pb::GetExposedElixirToolsRequest::default(),
            run.token(),
        ))
        .await
        .unwrap();
    let names: Vec<String> = listed
        .into_inner()
        .tools
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, vec!["double".to_string()]);

    let mut params = std::collections::HashMap::new();
    params.insert(
        "x".to_string(),
        prost_types::Any {
            type_url: String::new(),
            value: b"21".to_vec(),
        },
    );
    let req = pb::ExecuteElixirToolRequest {
        tool_name: "double".into(),
        parameters: params,
        ..Default::default()
    };
    let resp = c
        .execute_elixir_tool(with_token(req, run.token()))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.success);
    assert_eq!(resp.result.unwrap().value, b"42".to_vec());

    let req = pb::ExecuteElixirToolRequest {
        tool_name: "secret".into(),
        ..Default::default()
    };
    let resp = c
        .execute_elixir_tool(with_token(req, run.token()))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !resp.success && resp.error_message.contains("unknown host tool 'secret'"),
        "{}",
        resp.error_message
    );
}

#[tokio::test]
async fn rust_calls_host_tools_including_hidden_ones_with_typed_errors() {
    use snakepit_worker::host_bridge::{HostToolCall, HostToolError, ToolFailure, ToolFailureKind};
    let tools = HostTools::default();
    tools.register(
        HostTool::new("audit", "Rust only.", |c| async move {
            match c.args.get("x").and_then(serde_json::Value::as_i64) {
                Some(x) if x < 0 => Err("negative x".into()),
                Some(x) => Ok(json!(x + 1)),
                None => Err(ToolFailure::invalid_arguments("x is required")),
            }
        })
        .hidden(),
    );
    let call = |args: serde_json::Value| HostToolCall {
        session_id: "s".into(),
        args: args.as_object().cloned().unwrap(),
        metadata: Default::default(),
    };
    assert_eq!(
        tools.call("audit", call(json!({"x": 1}))).await.unwrap(),
        json!(2)
    );
    let err = tools.call("audit", call(json!({}))).await.unwrap_err();
    assert_eq!(
        err,
        HostToolError::Failed {
            name: "audit".into(),
            failure: ToolFailure::invalid_arguments("x is required"),
        }
    );
    assert_eq!(
        err.to_string(),
        "host tool 'audit' failed: invalid arguments: x is required"
    );
    let source = std::error::Error::source(&err).expect("the handler's failure is the source");
    assert_eq!(
        source.downcast_ref::<ToolFailure>().map(|f| f.kind),
        Some(ToolFailureKind::InvalidArguments)
    );
    match tools
        .call("audit", call(json!({"x": -1})))
        .await
        .unwrap_err()
    {
        HostToolError::Failed { failure, .. } => {
            assert_eq!(failure, ToolFailure::failed("negative x"));
        }
        other => panic!("not a tool failure: {other}"),
    }
    let err = tools.call("nope", call(json!({}))).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown host tool 'nope' (host tools: audit)"
    );
}
