//! Pretrained weights in: safetensors files and PyTorch `.pth` files (the zip
//! format `torch.save` writes since PyTorch 1.6), matched to a model's
//! variables by name.
//!
//! `Strict` wants every variable of the model in the file with the same shape
//! and nothing else in the file. `SkipHead` is for transfer learning: names
//! under the given prefixes (the classifier) may be missing, extra or of
//! another size, so a 1000-class ImageNet checkpoint starts a 4-class model;
//! everything else must still fit. Nothing is changed unless all of it fits.
//! PyTorch's `num_batches_tracked` counters are ignored (orchard keeps none).

use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use std::collections::HashMap;
use std::path::Path;

/// How strictly a file must match the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode<'a> {
    /// Same names and shapes on both sides.
    Strict,
    /// Like `Strict`, except for names starting with one of these prefixes
    /// (the classifier head, on either side): loaded where the shapes agree,
    /// skipped otherwise.
    SkipHead(&'a [&'a str]),
}

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Variables of the model set from the file.
    pub loaded: usize,
    /// Head names skipped (missing, extra or of another shape), sorted.
    pub skipped: Vec<String>,
}

/// Most names listed per kind of mismatch in an error message.
const LIST_AT_MOST: usize = 12;

/// Every tensor of a safetensors or zip `.pth` file, by name, on the CPU.
pub fn read_weights(path: &Path) -> Result<HashMap<String, Tensor>> {
    let bytes_head = read_head(path)?;
    let bad =
        |what: String, fix: &str| Error::input(format!("{}: {what}\nfix: {fix}", path.display()));
    if bytes_head.starts_with(b"PK\x03\x04") {
        // A zip: PyTorch's default `torch.save` format. The state dict may be
        // the top-level object or wrapped (`{"state_dict": ...}`, `{"model": ...}`).
        let mut found = Vec::new();
        for key in [None, Some("state_dict"), Some("model")] {
            found = candle_core::pickle::read_all_with_key(path, key).unwrap_or_default();
            if !found.is_empty() {
                break;
            }
        }
        if found.is_empty() {
            return Err(bad(
                "a PyTorch zip file without a readable state dict of tensors".into(),
                "save the model's state_dict: torch.save(model.state_dict(), PATH)",
            ));
        }
        return Ok(found.into_iter().collect());
    }
    if bytes_head.first() == Some(&0x80) {
        return Err(bad(
            "a PyTorch file in the legacy (pre-1.6, non-zip) format".into(),
            "re-save it in Python: torch.save(torch.load(PATH), NEW_PATH) (zip is the default), or convert it to safetensors",
        ));
    }
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
        bad(
            format!("neither a safetensors nor a PyTorch zip file ({e})"),
            "give a .safetensors file or a .pth written by torch.save",
        )
    })
}

/// The first bytes of `path`, enough to tell the formats apart.
fn read_head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::input(format!(
                "{}: no such weights file\nfix: check model.pretrained / --pretrained",
                path.display()
            ))
        } else {
            Error::io(path, e)
        }
    })?;
    let mut head = Vec::with_capacity(8);
    file.by_ref()
        .take(8)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    Ok(head)
}

/// Reads `path` and sets the model's variables in `varmap` from it.
pub fn load_file(varmap: &VarMap, path: &Path, mode: LoadMode) -> Result<LoadReport> {
    let tensors = read_weights(path)?;
    load_into(varmap, &tensors, path, mode)
}

/// Sets the variables of `varmap` from `tensors` (read from `path`, named in
/// errors), converting to each variable's dtype.
pub fn load_into(
    varmap: &VarMap,
    tensors: &HashMap<String, Tensor>,
    path: &Path,
    mode: LoadMode,
) -> Result<LoadReport> {
    let in_head = |name: &str| match mode {
        LoadMode::Strict => false,
        LoadMode::SkipHead(prefixes) => prefixes.iter().any(|p| name.starts_with(p)),
    };
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| Error::Internal("the model's VarMap lock is poisoned".into()))?;
    let (mut missing, mut unexpected, mut shapes, mut skipped) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut to_set = Vec::new();
    for (name, var) in vars.iter() {
        match tensors.get(name) {
            None if in_head(name) => skipped.push(name.clone()),
            None => missing.push(name.clone()),
            Some(t) if t.dims() != var.dims() => {
                if in_head(name) {
                    skipped.push(name.clone());
                } else {
                    shapes.push(format!(
                        "{name}: file {:?}, model {:?}",
                        t.dims(),
                        var.dims()
                    ));
                }
            }
            Some(t) => to_set.push((var, t)),
        }
    }
    for name in tensors.keys() {
        if vars.contains_key(name) || name.ends_with("num_batches_tracked") {
            continue;
        }
        if in_head(name) {
            skipped.push(name.clone());
        } else {
            unexpected.push(name.clone());
        }
    }
    if !(missing.is_empty() && unexpected.is_empty() && shapes.is_empty()) {
        let mut msg = format!("{}: the weights do not fit the model", path.display());
        for (what, list) in [
            ("missing in the file", &mut missing),
            ("in the file but not in the model", &mut unexpected),
            ("of another shape", &mut shapes),
        ] {
            if list.is_empty() {
                continue;
            }
            list.sort();
            msg.push_str(&format!("\n  {} {what}: ", list.len()));
            msg.push_str(&list[..list.len().min(LIST_AT_MOST)].join(", "));
            if list.len() > LIST_AT_MOST {
                msg.push_str(&format!(", ... ({} more)", list.len() - LIST_AT_MOST));
            }
        }
        msg.push_str(
            "\nfix: use weights saved from the same architecture (model.arch) with its parameter names",
        );
        return Err(Error::input(msg));
    }
    for (var, t) in &to_set {
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    skipped.sort();
    Ok(LoadReport {
        loaded: to_set.len(),
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Var};

    fn model(fc_out: usize) -> VarMap {
        let vm = VarMap::new();
        let mut data = vm.data().lock().unwrap();
        let zeros = |shape: &[usize]| Var::zeros(shape, DType::F32, &Device::Cpu).unwrap();
        data.insert("conv.weight".into(), zeros(&[2, 1, 3, 3]));
        data.insert("bn.running_mean".into(), zeros(&[2]));
        data.insert("fc.weight".into(), zeros(&[fc_out, 2]));
        drop(data);
        vm
    }

    fn file(fc_out: usize) -> HashMap<String, Tensor> {
        let t = |shape: &[usize], v: f32| {
            Tensor::full(v, shape, &Device::Cpu)
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
        };
        HashMap::from([
            ("conv.weight".to_string(), t(&[2, 1, 3, 3], 1.5)),
            ("bn.running_mean".to_string(), t(&[2], 2.5)),
            ("bn.num_batches_tracked".to_string(), t(&[1], 7.0)),
            ("fc.weight".to_string(), t(&[fc_out, 2], 3.5)),
        ])
    }

    fn first(vm: &VarMap, name: &str) -> f32 {
        vm.data().lock().unwrap()[name]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0]
    }

    #[test]
    fn strict_load_sets_every_variable_in_its_dtype() {
        let vm = model(4);
        let r = load_into(&vm, &file(4), Path::new("w.safetensors"), LoadMode::Strict).unwrap();
        assert_eq!(r.loaded, 3);
        assert_eq!(first(&vm, "conv.weight"), 1.5);
        assert_eq!(first(&vm, "bn.running_mean"), 2.5);
        assert_eq!(first(&vm, "fc.weight"), 3.5);
    }

    #[test]
    fn strict_load_lists_missing_unexpected_and_shapes_and_changes_nothing() {
        let vm = model(4);
        let mut f = file(1000);
        f.remove("bn.running_mean");
        f.insert(
            "extra.bias".into(),
            Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        );
        let err = load_into(&vm, &f, Path::new("in/w.pth"), LoadMode::Strict).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.exit_code(), 2);
        for want in [
            "in/w.pth",
            "1 missing in the file: bn.running_mean",
            "1 in the file but not in the model: extra.bias",
            "fc.weight: file [1000, 2], model [4, 2]",
            "fix:",
        ] {
            assert!(msg.contains(want), "{want:?} not in {msg}");
        }
        assert_eq!(first(&vm, "conv.weight"), 0.0, "nothing set on a mismatch");
    }

    #[test]
    fn skip_head_starts_a_small_head_from_a_large_checkpoint() {
        let vm = model(4);
        let mode = LoadMode::SkipHead(&["fc."]);
        let r = load_into(&vm, &file(1000), Path::new("w"), mode).unwrap();
        assert_eq!(r.loaded, 2);
        assert_eq!(r.skipped, ["fc.weight"]);
        assert_eq!(first(&vm, "conv.weight"), 1.5);
        assert_eq!(first(&vm, "fc.weight"), 0.0, "the head keeps its own init");
        // A body mismatch is still an error.
        let mut f = file(1000);
        f.remove("conv.weight");
        assert!(load_into(&vm, &f, Path::new("w"), mode).is_err());
    }

    #[test]
    fn safetensors_files_round_trip_and_bad_files_are_input_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        // Written with the safetensors crate directly, as another tool would:
        // f32 little-endian bytes under the model's names.
        let bytes =
            |n: usize, v: f32| -> Vec<u8> { (0..n).flat_map(|_| v.to_le_bytes()).collect() };
        let (conv, mean, fc) = (bytes(18, 1.5), bytes(2, 2.5), bytes(8, 3.5));
        let view = |shape: Vec<usize>, data: &'static [u8]| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, data).unwrap()
        };
        let leak = |v: Vec<u8>| -> &'static [u8] { Box::leak(v.into_boxed_slice()) };
        let views = vec![
            ("conv.weight", view(vec![2, 1, 3, 3], leak(conv))),
            ("bn.running_mean", view(vec![2], leak(mean))),
            ("fc.weight", view(vec![4, 2], leak(fc))),
        ];
        safetensors::serialize_to_file(views, None, &path).unwrap();
        let vm = model(4);
        load_file(&vm, &path, LoadMode::Strict).unwrap();
        assert_eq!(first(&vm, "fc.weight"), 3.5);

        let junk = dir.path().join("junk.bin");
        std::fs::write(&junk, b"hello world, not weights").unwrap();
        let err = read_weights(&junk).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("junk.bin"), "{err}");
        let legacy = dir.path().join("old.pth");
        std::fs::write(&legacy, [0x80, 0x02, 0x8a, 0x0a]).unwrap();
        assert!(
            read_weights(&legacy)
                .unwrap_err()
                .to_string()
                .contains("legacy")
        );
        let err = read_weights(&dir.path().join("absent.pth")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("absent.pth"), "{err}");
    }
}
