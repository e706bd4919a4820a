//! The frame format of the `fast` transport and its `tokio-util` codec.
//!
//! A frame is `length: u32 BE` (bytes that follow), `request id: u64 BE`, `kind: u8`, then the
//! body. Request ids let one connection carry many calls at once; id 0 is the connection's own
//! (the token handshake). Bodies are the bridge's protobuf messages; a call's body starts with
//! its timeout in milliseconds (`u32 BE`, 0 = none). The Python side (`snakepit_bridge._fast`)
//! implements the same format.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Bytes of a frame's header after the length field: request id and kind.
pub(crate) const HEADER_LEN: usize = 8 + 1;
/// Room above `max_message_bytes` for the header and a call's timeout prefix.
const FRAME_SLACK: usize = 64;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// Host -> worker, id 0, first frame: the run token (UTF-8).
    Hello,
    /// Host -> worker: a unary call (`timeout_ms` + `ExecuteToolRequest`).
    Call,
    /// Host -> worker: a streaming call (`timeout_ms` + `ExecuteToolRequest`).
    Stream,
    /// Host -> worker: the caller went away; empty body.
    Cancel,
    /// Host -> worker: the stream may send `u32 BE` more chunks.
    Credit,
    /// Worker -> host, id 0: the token was accepted.
    HelloOk,
    /// Worker -> host: a unary call's `ExecuteToolResponse`.
    Response,
    /// Worker -> host: one `ToolChunk`; the one with `is_final` ends the stream.
    Chunk,
    /// Worker -> host: the call failed: `u32 BE` gRPC status code, then a UTF-8 message.
    Error,
}

impl FrameKind {
    fn code(self) -> u8 {
        match self {
            Self::Hello => 0x01,
            Self::Call => 0x02,
            Self::Stream => 0x03,
            Self::Cancel => 0x04,
            Self::Credit => 0x05,
            Self::HelloOk => 0x81,
            Self::Response => 0x82,
            Self::Chunk => 0x83,
            Self::Error => 0x84,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x01 => Self::Hello,
            0x02 => Self::Call,
            0x03 => Self::Stream,
            0x04 => Self::Cancel,
            0x05 => Self::Credit,
            0x81 => Self::HelloOk,
            0x82 => Self::Response,
            0x83 => Self::Chunk,
            0x84 => Self::Error,
            _ => return None,
        })
    }
}

/// One frame: request id, kind and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The request it belongs to (0: the connection).
    pub(crate) id: u64,
    /// What it carries.
    pub(crate) kind: FrameKind,
    /// The encoded body.
    pub(crate) body: Bytes,
}

impl Frame {
    /// A frame with an empty body.
    pub(crate) fn empty(id: u64, kind: FrameKind) -> Self {
        Self {
            id,
            kind,
            body: Bytes::new(),
        }
    }
}

/// Why a byte stream is not a valid sequence of frames (the connection is closed).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The length field announces more than the configured maximum.
    #[error("frame of {len} bytes exceeds max_message_bytes ({max} bytes)")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The length field is shorter than the header.
    #[error("frame of {0} bytes is shorter than its {HEADER_LEN}-byte header")]
    TooShort(usize),
    /// The kind byte is not one of ours.
    #[error("unknown frame kind {0:#04x}")]
    UnknownKind(u8),
    /// Reading or writing the socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes and decodes frames, refusing any longer than `max_message_bytes` (plus the header).
#[derive(Debug, Clone)]
pub(crate) struct FrameCodec {
    max_message_bytes: usize,
}

impl FrameCodec {
    /// A codec for messages of at most `max_message_bytes`.
    pub(crate) fn new(max_message_bytes: usize) -> Self {
        Self { max_message_bytes }
    }

    fn max_len(&self) -> usize {
        self.max_message_bytes.saturating_add(FRAME_SLACK)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len < HEADER_LEN {
            return Err(FrameError::TooShort(len));
        }
        if len > self.max_len() {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_message_bytes,
            });
        }
        if src.len() < 4 + len {
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        let id = src.get_u64();
        let code = src.get_u8();
        let kind = FrameKind::from_code(code).ok_or(FrameError::UnknownKind(code))?;
        let body = src.split_to(len - HEADER_LEN).freeze();
        Ok(Some(Frame { id, kind, body }))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        let len = HEADER_LEN + frame.body.len();
        if len > self.max_len() || u32::try_from(len).is_err() {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_message_bytes,
            });
        }
        dst.reserve(4 + len);
        dst.put_u32(len as u32);
        dst.put_u64(frame.id);
        dst.put_u8(frame.kind.code());
        dst.extend_from_slice(&frame.body);
        Ok(())
    }
}

/// The body of a call frame: the timeout in ms (0 = none), then the encoded request.
pub(crate) fn call_body(timeout_ms: u32, request: &impl prost::Message) -> Bytes {
    let mut body = BytesMut::with_capacity(4 + request.encoded_len());
    body.put_u32(timeout_ms);
    // Encoding into a buffer that has the room cannot fail.
    let _ = request.encode(&mut body);
    body.freeze()
}

/// Splits an error frame's body into the gRPC status code and the message.
pub(crate) fn error_parts(body: &[u8]) -> (i32, String) {
    if body.len() < 4 {
        return (tonic::Code::Internal as i32, "malformed error frame".into());
    }
    let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    (code, String::from_utf8_lossy(&body[4..]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(frame: Frame) -> BytesMut {
        let mut buf = BytesMut::new();
        FrameCodec::new(1024).encode(frame, &mut buf).unwrap();
        buf
    }

    #[test]
    fn frames_round_trip_in_pieces() {
        let frame = Frame {
            id: 7,
            kind: FrameKind::Chunk,
            body: Bytes::from_static(b"hello"),
        };
        let whole = encoded(frame.clone());
        assert_eq!(whole.len(), 4 + HEADER_LEN + 5);
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::new();
        for (i, b) in whole.iter().enumerate() {
            buf.put_u8(*b);
            let out = codec.decode(&mut buf).unwrap();
            if i + 1 < whole.len() {
                assert!(out.is_none(), "decoded early at byte {i}");
            } else {
                assert_eq!(out, Some(frame.clone()));
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_lengths_and_kinds_are_errors() {
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, 1, 2, 3][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooShort(3))
        ));
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { max: 1024, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("max_message_bytes"));
        let mut buf = encoded(Frame::empty(1, FrameKind::Cancel));
        buf[12] = 0x42;
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::UnknownKind(0x42))
        ));
    }

    #[test]
    fn oversized_frames_are_not_encoded() {
        let mut buf = BytesMut::new();
        let frame = Frame {
            id: 1,
            kind: FrameKind::Call,
            body: Bytes::from(vec![0u8; 2048]),
        };
        let err = FrameCodec::new(1024).encode(frame, &mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }));
        assert!(buf.is_empty());
    }

    #[test]
    fn error_bodies_split_into_code_and_message() {
        let mut body = 5u32.to_be_bytes().to_vec();
        body.extend_from_slice(b"{\"type\":\"UnknownToolError\"}");
        assert_eq!(
            error_parts(&body),
            (5, "{\"type\":\"UnknownToolError\"}".to_owned())
        );
        assert_eq!(error_parts(b"x").0, tonic::Code::Internal as i32);
    }
}
