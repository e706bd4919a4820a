//! [`ArrayData`] conversions for the `ndarray` and `arrow` features.

#[cfg(feature = "ndarray")]
mod nd {
    use crate::array::{ArrayData, Element};
    use crate::Error;

    impl ArrayData {
        /// Copies an `ndarray` array (any layout: a transposed or strided view is written out
        /// in C order) into an [`ArrayData`].
        pub fn from_ndarray<T, S, D>(array: &ndarray::ArrayBase<S, D>) -> Result<Self, Error>
        where
            T: Element,
            S: ndarray::Data<Elem = T>,
            D: ndarray::Dimension,
        {
            let shape = array.shape().to_vec();
            match array.as_slice() {
                Some(contiguous) => Self::from_slice(contiguous, shape),
                None => Self::from_vec(array.iter().copied().collect(), shape),
            }
        }

        /// Takes ownership of an owned `ndarray` array, without a copy when it is in C order.
        pub fn from_ndarray_owned<T: Element, D: ndarray::Dimension>(
            array: ndarray::Array<T, D>,
        ) -> Result<Self, Error> {
            let shape = array.shape().to_vec();
            let len = array.len();
            if array.is_standard_layout() {
                let (vec, offset) = array.into_raw_vec_and_offset();
                if offset.unwrap_or(0) == 0 && vec.len() == len {
                    return Self::from_vec(vec, shape);
                }
                let start = offset.unwrap_or(0);
                if let Some(elements) = vec.get(start..start + len) {
                    return Self::from_slice(elements, shape);
                }
                return Self::from_vec(vec, shape); // unreachable for a standard layout: a clear length error
            }
            Self::from_ndarray(&array)
        }

        /// Views the array as an `ndarray` view without copying (the bytes must be aligned for
        /// `T`, as shared-memory results always are; otherwise use [`ArrayData::to_ndarray`]).
        pub fn view_ndarray<T: Element>(&self) -> Result<ndarray::ArrayViewD<'_, T>, Error> {
            let slice = match self.as_slice::<T>()? {
                std::borrow::Cow::Borrowed(s) => s,
                std::borrow::Cow::Owned(_) => {
                    return Err(Error::validation(
                        "array",
                        "the bytes are not aligned for a view; use to_ndarray(), which copies",
                    ))
                }
            };
            ndarray::ArrayViewD::from_shape(ndarray::IxDyn(&self.shape), slice)
                .map_err(|e| Error::validation("array", format!("shape {:?}: {e}", self.shape)))
        }

        /// Copies the array into an owned `ndarray` array.
        pub fn to_ndarray<T: Element>(&self) -> Result<ndarray::ArrayD<T>, Error> {
            let data = self.as_slice::<T>()?.into_owned();
            ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&self.shape), data)
                .map_err(|e| Error::validation("array", format!("shape {:?}: {e}", self.shape)))
        }
    }
}

#[cfg(feature = "arrow")]
mod arrow {
    use arrow_array::RecordBatch;
    use arrow_buffer::Buffer;
    use arrow_ipc::reader::StreamDecoder;
    use arrow_ipc::writer::StreamWriter;

    use crate::array::{ArrayData, ArrayFormat};
    use crate::Error;

    fn arrow_error(what: &str, e: impl std::fmt::Display) -> Error {
        Error::validation("arrow record batches", format!("{what}: {e}"))
    }

    impl ArrayData {
        /// Writes record batches (one schema) as an Arrow IPC stream; Python receives a
        /// `pyarrow.Table` (or the stream's bytes when pyarrow is not installed).
        pub fn from_record_batches(batches: &[RecordBatch]) -> Result<Self, Error> {
            let first = batches.first().ok_or_else(|| {
                Error::validation("arrow record batches", "no batch given; pass at least one")
            })?;
            let mut out = Vec::new();
            {
                let mut writer = StreamWriter::try_new(&mut out, &first.schema())
                    .map_err(|e| arrow_error("cannot start the IPC stream", e))?;
                for batch in batches {
                    writer.write(batch).map_err(|e| {
                        arrow_error("cannot write a batch (do all batches share one schema?)", e)
                    })?;
                }
                writer
                    .finish()
                    .map_err(|e| arrow_error("cannot finish the IPC stream", e))?;
            }
            Ok(Self::arrow_ipc(out))
        }

        /// Reads the record batches of an Arrow IPC stream; the columns view this array's bytes
        /// (shared memory for a large result) without copying them.
        pub fn to_record_batches(&self) -> Result<Vec<RecordBatch>, Error> {
            if self.format != ArrayFormat::ArrowIpc {
                return Err(Error::validation(
                    "arrow record batches",
                    format!(
                        "the array holds {}, not an Arrow IPC stream",
                        self.format.as_str()
                    ),
                ));
            }
            let mut buffer = Buffer::from(self.bytes.clone());
            let mut decoder = StreamDecoder::new();
            let mut batches = Vec::new();
            while let Some(batch) = decoder
                .decode(&mut buffer)
                .map_err(|e| arrow_error("the IPC stream is malformed", e))?
            {
                batches.push(batch);
            }
            decoder
                .finish()
                .map_err(|e| arrow_error("the IPC stream ended early", e))?;
            Ok(batches)
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "ndarray")]
    #[test]
    fn ndarrays_of_any_layout_convert_in_c_order() {
        use crate::ArrayData;
        let a = ndarray::Array2::from_shape_vec((2, 3), vec![1i32, 2, 3, 4, 5, 6]).unwrap();
        let t = ArrayData::from_ndarray(&a.t()).unwrap();
        assert_eq!(t.shape, vec![3, 2]);
        assert_eq!(&*t.as_slice::<i32>().unwrap(), &[1, 4, 2, 5, 3, 6]);
        let owned = ArrayData::from_ndarray_owned(a.clone()).unwrap();
        assert_eq!(owned.view_ndarray::<i32>().unwrap(), a.into_dyn().view());
        assert!(owned.to_ndarray::<f64>().is_err());
    }

    #[cfg(feature = "arrow")]
    #[test]
    fn record_batches_round_trip_through_an_ipc_stream() {
        use std::sync::Arc;

        use arrow_array::{
            ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
        };

        use crate::ArrayData;
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            (
                "score",
                Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5])) as ArrayRef,
            ),
            (
                "name",
                Arc::new(StringArray::from(vec!["a", "b", "c"])) as ArrayRef,
            ),
            (
                "ok",
                Arc::new(BooleanArray::from(vec![true, false, true])) as ArrayRef,
            ),
        ])
        .unwrap();
        let data = ArrayData::from_record_batches(&[batch.clone(), batch.clone()]).unwrap();
        assert_eq!(
            data.to_record_batches().unwrap(),
            vec![batch.clone(), batch]
        );
        assert!(ArrayData::from_record_batches(&[]).is_err());
        let garbage = ArrayData::arrow_ipc(vec![1u8, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(garbage.to_record_batches().is_err());
    }
}
