//! The optimiser's state as named tensors, so a checkpoint (a safetensors
//! file, with the model's weights beside it) carries it and a resumed run
//! steps exactly as an uninterrupted one.
//!
//! Names, all under `optim.` so they never clash with the model's:
//! `optim.kind` (which algorithm wrote it), `optim.<param>.step`,
//! `optim.<param>.grad_avg` / `.sqr_avg` (fastai's names), `optim.lookahead.count`
//! and `optim.<param>.slow`. Buffers keep the parameter's float type, so the
//! round trip is exact.

use super::{Algorithm, Optimizer};
use crate::error::{Error, Result};
use crate::kernels::Buffer;
use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeSet, HashMap};

const PREFIX: &str = "optim.";
const KIND: &str = "optim.kind";
const LOOKAHEAD_COUNT: &str = "optim.lookahead.count";

impl Optimizer {
    /// Which state this optimiser keeps: a code, saved and checked on load.
    fn kind_code(&self) -> i64 {
        match self.settings.algorithm {
            Algorithm::Sgd { .. } if self.settings.mom == 0.0 => 0,
            Algorithm::Sgd { .. } => 1,
            Algorithm::Adam => 2,
            Algorithm::RAdam => 3,
        }
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        match self.kind_code() {
            0 => &[],
            1 => &["grad_avg"],
            _ => &["grad_avg", "sqr_avg"],
        }
    }

    /// The state as named host tensors (`candle_core::safetensors::save` writes them).
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let dev = &Device::Cpu;
        let mut out = HashMap::new();
        out.insert(KIND.to_string(), Tensor::new(&[self.kind_code()], dev)?);
        let names = self.buffer_names();
        for slot in &self.slots {
            let name = &slot.param.name;
            if out.contains_key(&key(name, "step")) {
                return Err(Error::Internal(format!(
                    "optimiser: two parameters named {name}"
                )));
            }
            if slot.step == 0 {
                continue;
            }
            out.insert(key(name, "step"), Tensor::new(&[slot.step as i64], dev)?);
            for (buffer, what) in slot.buffers.iter().zip(names) {
                out.insert(key(name, what), buffer.to_tensor()?);
            }
        }
        if let Some(la) = &self.lookahead {
            out.insert(
                LOOKAHEAD_COUNT.to_string(),
                Tensor::new(&[la.count as i64], dev)?,
            );
            if let Some(slow) = &la.slow {
                for (slot, buffer) in self.slots.iter().zip(slow) {
                    out.insert(key(&slot.param.name, "slow"), buffer.to_tensor()?);
                }
            }
        }
        Ok(out)
    }

    /// Restores a state written by `state_tensors` of an optimiser of the same
    /// kind over the same parameters. Keys outside `optim.` (the model's weights
    /// in the same file) are ignored; nothing changes unless all of it fits.
    pub fn load_state_tensors(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let mut used = BTreeSet::new();
        let kind =
            scalar(state, KIND, &mut used)?.ok_or_else(|| mismatch(format!("no {KIND} entry")))?;
        if kind != self.kind_code() {
            return Err(mismatch(format!(
                "it was written by optimizer kind {kind}, this run's is {} (0 sgd, 1 sgd with momentum, 2 adamw, 3 radam/ranger)",
                self.kind_code()
            )));
        }
        let names = self.buffer_names();
        let mut restored = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let name = &slot.param.name;
            let Some(step) = scalar(state, &key(name, "step"), &mut used)? else {
                restored.push((0, Vec::new()));
                continue;
            };
            let buffers = names
                .iter()
                .map(|what| {
                    let k = key(name, what);
                    let t = state
                        .get(&k)
                        .ok_or_else(|| mismatch(format!("{k} is missing")))?;
                    used.insert(k.clone());
                    fitting(&k, t, &slot.param)
                })
                .collect::<Result<Vec<_>>>()?;
            restored.push((
                u64::try_from(step).map_err(|_| mismatch(format!("negative step for {name}")))?,
                buffers,
            ));
        }
        let lookahead = match &self.lookahead {
            None => None,
            Some(_) => {
                let count = scalar(state, LOOKAHEAD_COUNT, &mut used)?
                    .ok_or_else(|| mismatch(format!("no {LOOKAHEAD_COUNT} entry")))?;
                let count = u64::try_from(count)
                    .map_err(|_| mismatch("a negative lookahead count".into()))?;
                let has_slow = self
                    .slots
                    .first()
                    .is_some_and(|s| state.contains_key(&key(&s.param.name, "slow")));
                let slow = if has_slow {
                    let copies = self
                        .slots
                        .iter()
                        .map(|slot| {
                            let k = key(&slot.param.name, "slow");
                            let t = state
                                .get(&k)
                                .ok_or_else(|| mismatch(format!("{k} is missing")))?;
                            used.insert(k.clone());
                            fitting(&k, t, &slot.param)
                        })
                        .collect::<Result<Vec<_>>>()?;
                    Some(copies)
                } else {
                    None
                };
                Some((count, slow))
            }
        };
        if let Some(extra) = state
            .keys()
            .find(|k| k.starts_with(PREFIX) && !used.contains(*k))
        {
            return Err(mismatch(format!(
                "{extra} belongs to no parameter or state of this optimiser"
            )));
        }
        for (slot, (step, buffers)) in self.slots.iter_mut().zip(restored) {
            slot.step = step;
            slot.buffers = buffers;
        }
        if let (Some(la), Some((count, slow))) = (&mut self.lookahead, lookahead) {
            la.count = count;
            la.slow = slow;
        }
        Ok(())
    }
}

fn key(param: &str, what: &str) -> String {
    format!("{PREFIX}{param}.{what}")
}

fn mismatch(why: String) -> Error {
    Error::input(format!(
        "the optimiser state in the checkpoint does not fit this run: {why}\nfix: resume with the config the run was started with"
    ))
}

/// A one-element i64 entry, if present.
fn scalar(
    state: &HashMap<String, Tensor>,
    k: &str,
    used: &mut BTreeSet<String>,
) -> Result<Option<i64>> {
    let Some(t) = state.get(k) else {
        return Ok(None);
    };
    used.insert(k.to_string());
    if t.dtype() != DType::I64 || t.elem_count() != 1 {
        return Err(mismatch(format!("{k} is not one integer")));
    }
    Ok(Some(t.flatten_all()?.to_vec1::<i64>()?[0]))
}

/// The entry as a buffer for `param`: same float type and element count.
fn fitting(k: &str, t: &Tensor, param: &crate::train::params::TrainParam) -> Result<Buffer> {
    if t.dtype() != param.var.dtype() || t.elem_count() != param.var.elem_count() {
        return Err(mismatch(format!(
            "{k} has {} {:?} values, the parameter {} {:?}",
            t.elem_count(),
            t.dtype(),
            param.var.elem_count(),
            param.var.dtype()
        )));
    }
    Ok(Buffer::from_tensor(t)?)
}

#[cfg(test)]
mod tests {
    use super::super::{OptimSettings, Optimizer, StepHypers};
    use crate::train::params::TrainParam;
    use candle_core::{Device, Tensor, Var};

    /// f32 parameters, as training uses.
    fn params32(values: &[(&str, &[f32], bool)]) -> Vec<TrainParam> {
        values
            .iter()
            .map(|(name, v, decay)| TrainParam {
                name: name.to_string(),
                var: Var::from_tensor(&Tensor::new(*v, &Device::Cpu).unwrap()).unwrap(),
                weight_decay: *decay,
            })
            .collect()
    }

    fn step_with(opt: &mut Optimizer, params: &[TrainParam], i: usize) {
        // A gradient that changes with the weights, so every bit of state matters.
        let mut loss = Tensor::zeros((), candle_core::DType::F32, &Device::Cpu).unwrap();
        for p in params {
            let t = p.var.as_tensor();
            loss = (loss
                + (t.sqr().unwrap() * (0.3 + 0.1 * i as f64))
                    .unwrap()
                    .sum_all()
                    .unwrap())
            .unwrap();
        }
        let h = StepHypers {
            lr: 0.05 / (1 + i) as f64,
            mom: 0.95 - 0.01 * i as f64,
        };
        opt.step(&loss.backward().unwrap(), h).unwrap();
    }

    fn bits(params: &[TrainParam]) -> Vec<u32> {
        params
            .iter()
            .flat_map(|p| p.var.as_tensor().to_vec1::<f32>().unwrap())
            .map(f32::to_bits)
            .collect()
    }

    #[test]
    fn save_load_step_equals_uninterrupted_steps() {
        let sgd_mom = OptimSettings {
            mom: 0.9,
            wd: 0.1,
            ..OptimSettings::sgd()
        };
        for settings in [
            OptimSettings::adam(),
            OptimSettings::ranger(),
            OptimSettings::radam(),
            sgd_mom,
        ] {
            let spec: &[(&str, &[f32], bool)] =
                &[("w", &[1.0, -2.0, 0.5], true), ("b", &[0.25], false)];
            // Uninterrupted: 10 steps (ranger syncs at 6, RAdam rectifies at 6).
            let a = params32(spec);
            let mut opt_a = Optimizer::new(a.clone(), settings).unwrap();
            for i in 0..10 {
                step_with(&mut opt_a, &a, i);
            }
            // Interrupted after 4: save, write to disk, fresh optimiser on a copy
            // of the weights, load, 6 more.
            let b = params32(spec);
            let mut opt_b = Optimizer::new(b.clone(), settings).unwrap();
            for i in 0..4 {
                step_with(&mut opt_b, &b, i);
            }
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("ckpt.safetensors");
            candle_core::safetensors::save(&opt_b.state_tensors().unwrap(), &file).unwrap();
            let c = params32(spec);
            for (c, b) in c.iter().zip(&b) {
                c.var.set(b.var.as_tensor()).unwrap();
            }
            let mut opt_c = Optimizer::new(c.clone(), settings).unwrap();
            let loaded = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
            opt_c.load_state_tensors(&loaded).unwrap();
            assert_eq!(opt_c.steps(), 4);
            for i in 4..10 {
                step_with(&mut opt_c, &c, i);
            }
            assert_eq!(bits(&a), bits(&c), "{settings:?}");
        }
    }

    #[test]
    fn state_of_another_optimiser_or_model_is_refused() {
        let p = params32(&[("w", &[1.0, 2.0], true)]);
        let mut adam = Optimizer::new(p.clone(), OptimSettings::adam()).unwrap();
        step_with(&mut adam, &p, 0);
        let saved = adam.state_tensors().unwrap();
        let mut radam = Optimizer::new(p.clone(), OptimSettings::radam()).unwrap();
        let err = radam.load_state_tensors(&saved).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        // Another model: the same name with another size.
        let q = params32(&[("w", &[1.0, 2.0, 3.0], true)]);
        let mut other = Optimizer::new(q, OptimSettings::adam()).unwrap();
        assert!(other.load_state_tensors(&saved).is_err());
        // A parameter the optimiser does not have.
        let r = params32(&[("v", &[1.0, 2.0], true)]);
        let mut other = Optimizer::new(r, OptimSettings::adam()).unwrap();
        let err = other.load_state_tensors(&saved).unwrap_err().to_string();
        assert!(err.contains("optim.w."), "{err}");
        // Model weights in the same file are ignored; a fresh optimiser loads as fresh.
        let mut with_model = saved.clone();
        with_model.insert(
            "fc.weight".into(),
            Tensor::new(&[1f32], &Device::Cpu).unwrap(),
        );
        let mut same = Optimizer::new(p.clone(), OptimSettings::adam()).unwrap();
        same.load_state_tensors(&with_model).unwrap();
        assert_eq!(same.steps(), 1);
        let fresh = Optimizer::new(p, OptimSettings::adam()).unwrap();
        let mut again =
            Optimizer::new(params32(&[("w", &[0.0, 0.0], true)]), OptimSettings::adam()).unwrap();
        again
            .load_state_tensors(&fresh.state_tensors().unwrap())
            .unwrap();
        assert_eq!(again.steps(), 0);
    }
}
