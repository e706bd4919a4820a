//! Arrays and large byte buffers as tool arguments and results, with their wire markers.
//!
//! An [`ArrayData`] is a contiguous C-order buffer with a dtype and a shape (or plain bytes, or
//! an Arrow IPC stream). How it travels is the worker's business: above the pool's
//! `zero_copy.threshold_bytes` it is written into the worker's shared-memory arena and only a
//! handle crosses the wire; below it the bytes ride in the message. Either way the Python tool
//! receives a numpy array (a memoryview without numpy, a pyarrow table for Arrow data).

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::Error;

/// The JSON key that marks an array handle inside arguments and results.
pub const ARRAY_MARKER_KEY: &str = "__snakepit_array__";

/// The element type of an array, named as numpy names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// `bool`, one byte per element (0 or 1).
    Bool,
    /// `uint8`.
    U8,
    /// `int8`.
    I8,
    /// `uint16`.
    U16,
    /// `int16`.
    I16,
    /// `uint32`.
    U32,
    /// `int32`.
    I32,
    /// `uint64`.
    U64,
    /// `int64`.
    I64,
    /// `float32`.
    F32,
    /// `float64`.
    F64,
}

impl DType {
    /// Every dtype, for parsing and error messages.
    pub const ALL: [DType; 11] = [
        DType::Bool,
        DType::U8,
        DType::I8,
        DType::U16,
        DType::I16,
        DType::U32,
        DType::I32,
        DType::U64,
        DType::I64,
        DType::F32,
        DType::F64,
    ];

    /// Returns numpy's name of the dtype (`float32`, `int64`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::U8 => "uint8",
            DType::I8 => "int8",
            DType::U16 => "uint16",
            DType::I16 => "int16",
            DType::U32 => "uint32",
            DType::I32 => "int32",
            DType::U64 => "uint64",
            DType::I64 => "int64",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    /// Returns the size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
        }
    }

    /// Parses numpy's name of a dtype; `None` for a dtype we do not carry.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an [`ArrayData`]'s bytes hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArrayFormat {
    /// Opaque bytes (Python sees `bytes`-like data: a memoryview or a uint8 array).
    Bytes,
    /// A C-contiguous n-dimensional array (Python sees a numpy array).
    Ndarray,
    /// An Arrow IPC stream (Python sees a `pyarrow.Table` when pyarrow is installed).
    ArrowIpc,
}

impl ArrayFormat {
    /// Returns the name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ArrayFormat::Bytes => "bytes",
            ArrayFormat::Ndarray => "ndarray",
            ArrayFormat::ArrowIpc => "arrow_ipc",
        }
    }

    /// Parses the wire name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Bytes, Self::Ndarray, Self::ArrowIpc]
            .into_iter()
            .find(|f| f.as_str() == name)
    }
}

/// A number type an [`ArrayData`] can be built from and viewed as.
pub trait Element: bytemuck::Pod + Send + Sync {
    /// The element's dtype.
    const DTYPE: DType;
}

macro_rules! element {
    ($($t:ty => $d:ident),*) => {$(
        impl Element for $t {
            const DTYPE: DType = DType::$d;
        }
    )*};
}
element!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, u64 => U64, i64 => I64, f32 => F32, f64 => F64);

/// Owns a `Vec<T>` and shows it as bytes, so [`ArrayData::from_vec`] moves instead of copying.
struct VecBytes<T: Element>(Vec<T>);

impl<T: Element> AsRef<[u8]> for VecBytes<T> {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// A contiguous array (or byte buffer, or Arrow IPC stream) passed to or returned by a tool.
#[derive(Clone, PartialEq)]
pub struct ArrayData {
    /// What the bytes hold.
    pub format: ArrayFormat,
    /// The element type (`uint8` for bytes and Arrow streams).
    pub dtype: DType,
    /// The shape, C order (`[]` for a 0-d array, `[len]` for bytes).
    pub shape: Vec<usize>,
    /// The elements, C-contiguous; for a shared-memory result this views the mapping itself.
    pub bytes: Bytes,
}

impl fmt::Debug for ArrayData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrayData")
            .field("format", &self.format)
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .field("len", &self.bytes.len())
            .finish()
    }
}

fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d))
}

impl ArrayData {
    /// Wraps opaque bytes (no copy).
    pub fn bytes(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            format: ArrayFormat::Bytes,
            dtype: DType::U8,
            shape: vec![bytes.len()],
            bytes,
        }
    }

    /// Wraps `bytes` as an array of `dtype` and `shape`; the length must match exactly.
    pub fn from_bytes(
        dtype: DType,
        shape: Vec<usize>,
        bytes: impl Into<Bytes>,
    ) -> Result<Self, Error> {
        let bytes = bytes.into();
        let expected = element_count(&shape).and_then(|n| n.checked_mul(dtype.size()));
        if expected != Some(bytes.len()) {
            return Err(Error::validation(
                "array",
                format!(
                    "{} bytes do not hold a {dtype} array of shape {shape:?} (that needs {} bytes)",
                    bytes.len(),
                    expected.map_or_else(|| "more than usize::MAX".to_owned(), |n| n.to_string())
                ),
            ));
        }
        Ok(Self {
            format: ArrayFormat::Ndarray,
            dtype,
            shape,
            bytes,
        })
    }

    /// Takes ownership of `data` as an array of `shape` (no copy).
    pub fn from_vec<T: Element>(data: Vec<T>, shape: Vec<usize>) -> Result<Self, Error> {
        Self::from_bytes(T::DTYPE, shape, Bytes::from_owner(VecBytes(data)))
    }

    /// Copies `data` into an array of `shape`.
    pub fn from_slice<T: Element>(data: &[T], shape: Vec<usize>) -> Result<Self, Error> {
        Self::from_bytes(
            T::DTYPE,
            shape,
            Bytes::copy_from_slice(bytemuck::cast_slice(data)),
        )
    }

    /// Builds a `bool` array of `shape` (one byte per element).
    pub fn from_bools(data: &[bool], shape: Vec<usize>) -> Result<Self, Error> {
        let bytes: Vec<u8> = data.iter().map(|b| u8::from(*b)).collect();
        Self::from_bytes(DType::Bool, shape, bytes)
    }

    /// Wraps an Arrow IPC stream (see the `arrow` feature of `snakepit-worker` for record batches).
    pub fn arrow_ipc(stream: impl Into<Bytes>) -> Self {
        let mut data = Self::bytes(stream);
        data.format = ArrayFormat::ArrowIpc;
        data
    }

    /// Returns the number of elements.
    pub fn len(&self) -> usize {
        element_count(&self.shape).unwrap_or(0)
    }

    /// Returns whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Views the elements as `T` without copying when the buffer is aligned (shared-memory
    /// regions always are), copying otherwise; errors when `T` is not the array's dtype.
    pub fn as_slice<T: Element>(&self) -> Result<Cow<'_, [T]>, Error> {
        if T::DTYPE != self.dtype {
            return Err(Error::validation(
                "array",
                format!(
                    "the array holds {} elements, not {} (read it with the matching Rust type)",
                    self.dtype,
                    T::DTYPE
                ),
            ));
        }
        match bytemuck::try_cast_slice::<u8, T>(&self.bytes) {
            Ok(view) => Ok(Cow::Borrowed(view)),
            Err(_) => Ok(Cow::Owned(
                self.bytes
                    .chunks_exact(T::DTYPE.size())
                    .map(bytemuck::pod_read_unaligned)
                    .collect(),
            )),
        }
    }

    /// Returns the elements of a `bool` array.
    pub fn to_bools(&self) -> Result<Vec<bool>, Error> {
        if self.dtype != DType::Bool {
            return Err(Error::validation(
                "array",
                format!("the array holds {} elements, not bool", self.dtype),
            ));
        }
        Ok(self.bytes.iter().map(|b| *b != 0).collect())
    }

    /// The JSON description that travels with the bytes (everything but the bytes).
    pub fn describe(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("format".into(), json!(self.format.as_str()));
        m.insert("dtype".into(), json!(self.dtype.as_str()));
        m.insert("shape".into(), json!(self.shape));
        let mut stride = self.dtype.size();
        let mut strides = vec![0usize; self.shape.len()];
        for (i, d) in self.shape.iter().enumerate().rev() {
            strides[i] = stride;
            stride = stride.saturating_mul(*d);
        }
        m.insert("strides".into(), json!(strides));
        m.insert("nbytes".into(), json!(self.bytes.len()));
        m
    }

    /// Reads the description written by [`ArrayData::describe`] (or by Python) and pairs it with `bytes`.
    pub fn from_description(desc: &Map<String, Value>, bytes: Bytes) -> Result<Self, Error> {
        let bad = |what: &str| {
            Error::validation(
                "array handle",
                format!(
                    "the worker sent an array handle with {what}: {}",
                    Value::Object(desc.clone())
                ),
            )
        };
        let format = desc
            .get("format")
            .and_then(Value::as_str)
            .and_then(ArrayFormat::parse)
            .ok_or_else(|| bad("no known format"))?;
        let dtype_name = desc.get("dtype").and_then(Value::as_str).unwrap_or("uint8");
        let dtype = DType::parse(dtype_name).ok_or_else(|| {
            bad(&format!(
                "dtype {dtype_name:?}, which snakepit does not carry (use one of {})",
                DType::ALL.map(DType::as_str).join(", ")
            ))
        })?;
        let shape = match desc.get("shape") {
            Some(Value::Array(dims)) => dims
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("a shape that is not a list of sizes"))?,
            _ => vec![bytes.len()],
        };
        match format {
            ArrayFormat::Ndarray => Self::from_bytes(dtype, shape, bytes),
            ArrayFormat::Bytes => Ok(Self::bytes(bytes)),
            ArrayFormat::ArrowIpc => Ok(Self::arrow_ipc(bytes)),
        }
    }
}

/// Returns the handle object inside `value` when `value` is an array marker.
pub fn array_marker(value: &Value) -> Option<&Map<String, Value>> {
    value.as_object()?.get(ARRAY_MARKER_KEY)?.as_object()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn typed_arrays_keep_dtype_shape_and_elements() {
        let a = ArrayData::from_vec(vec![1.5f32, 2.5, 3.5, 4.5, 5.5, 6.5], vec![2, 3]).unwrap();
        assert_eq!(a.dtype, DType::F32);
        assert_eq!(a.len(), 6);
        assert_eq!(
            &*a.as_slice::<f32>().unwrap(),
            &[1.5, 2.5, 3.5, 4.5, 5.5, 6.5]
        );
        let err = a.as_slice::<f64>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert!(err.to_string().contains("float32"), "{err}");
        let d = a.describe();
        assert_eq!(d["strides"], json!([12, 4]));
        let back = ArrayData::from_description(&d, a.bytes.clone()).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn length_must_match_the_shape() {
        let err = ArrayData::from_bytes(DType::I64, vec![3], vec![0u8; 16]).unwrap_err();
        assert!(err.to_string().contains("24 bytes"), "{err}");
        let zero_d = ArrayData::from_slice(&[7i64], vec![]).unwrap();
        assert_eq!(zero_d.len(), 1);
        let empty = ArrayData::from_slice::<f64>(&[], vec![0, 4]).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn unaligned_bytes_are_read_by_copy() {
        let raw = Bytes::from(vec![0u8; 9]).slice(1..9);
        let a = ArrayData::from_bytes(DType::F64, vec![1], raw).unwrap();
        assert_eq!(&*a.as_slice::<f64>().unwrap(), &[0.0]);
    }

    #[test]
    fn bad_handles_are_named() {
        let mut d = ArrayData::bytes(vec![1, 2]).describe();
        d.insert("dtype".into(), json!("complex128"));
        d.insert("format".into(), json!("ndarray"));
        let err = ArrayData::from_description(&d, Bytes::new()).unwrap_err();
        assert!(err.to_string().contains("complex128"), "{err}");
        let bools = ArrayData::from_bools(&[true, false], vec![2]).unwrap();
        assert_eq!(bools.to_bools().unwrap(), vec![true, false]);
    }
}
