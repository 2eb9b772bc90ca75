//! The plan as text: stable, readable, no timestamps or random ids.

use std::fmt::Write;

use serde_json::Value as Json;

use super::{Action, Change, Operation, Plan, Shown, StepAction};
use crate::resource::Update;
use crate::value::as_reference;

impl Plan {
    /// The plan as text, in the spirit of Terraform's plan: one block per changed resource
    /// with its symbol (`+` create, `~` update, `+/-` replace creating first, `-/+` replace
    /// destroying first, `-` delete, `*` roll), the changed fields (old -> new), the reasons,
    /// then the execution order and a summary line. Secrets show as `(secret)`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let verb = match self.operation {
            Operation::Apply => "apply",
            Operation::Destroy => "destroy",
        };
        let _ = writeln!(
            out,
            "Plan to {verb} stack `{}` (state serial {})",
            self.stack, self.basis.serial
        );
        if self.is_empty() {
            let _ = writeln!(
                out,
                "\nNo changes: the cloud matches the stack ({} resources unchanged).",
                self.summary.unchanged
            );
            return out;
        }
        for c in &self.changes {
            out.push('\n');
            self.render_change(&mut out, c);
        }
        out.push_str("\nExecution order:\n");
        let width = self.steps.len().to_string().len();
        for (i, s) in self.steps.iter().enumerate() {
            let what = match s.action {
                StepAction::Create => "create",
                StepAction::Update => "update",
                StepAction::Roll => "roll",
                StepAction::Delete => "delete",
                StepAction::DeleteDeposed => "delete old",
            };
            let _ = write!(out, "  {:>width$}. {what:<10} {}", i + 1, s.id);
            if !s.after.is_empty() {
                let deps: Vec<String> = s.after.iter().map(|a| (a + 1).to_string()).collect();
                let _ = write!(out, "  (after {})", deps.join(", "));
            }
            out.push('\n');
        }
        let s = &self.summary;
        let _ = write!(
            out,
            "\nPlan: {} to create, {} to replace, {} to update, {} to delete, {} {} to roll",
            s.create,
            s.replace,
            s.update,
            s.delete,
            s.roll,
            if s.roll == 1 { "fleet" } else { "fleets" }
        );
        // Old objects of replacements an interrupted run did not get to delete (the old object
        // of each of this plan's create-before-destroy replacements is counted in `replace`).
        let deposed = self.steps.iter().filter(|s| s.action == StepAction::DeleteDeposed).count();
        let replacing = self
            .changes
            .iter()
            .filter(|c| c.action == Action::Replace && !c.destroy_before_create)
            .count();
        let old = deposed.saturating_sub(replacing);
        if old > 0 {
            let _ = write!(
                out,
                ", {old} old {} left by an interrupted run to delete",
                if old == 1 { "object" } else { "objects" }
            );
        }
        out.push_str(".\n");
        out
    }

    fn render_change(&self, out: &mut String, c: &Change) {
        let symbol = c.action.symbol(c.destroy_before_create);
        let mut title = format!("{symbol:>3} {} {} ({})", c.action.name(), c.id, c.kind);
        if c.action == Action::Replace {
            title.push_str(if c.destroy_before_create {
                ", destroy before create"
            } else {
                ", create before destroy"
            });
        }
        let _ = writeln!(out, "{title}");
        let name_width = c.fields.iter().map(|f| f.name.len()).max().unwrap_or(0);
        for f in &c.fields {
            let after = self.show(&f.after);
            let line = match &f.before {
                Some(before) => format!("{} -> {after}", self.show(before)),
                None => after,
            };
            let note = match (c.action, f.effect) {
                (Action::Create | Action::Delete, _) => "",
                (_, Update::Replace) => "  # forces replacement",
                (_, Update::Roll) => "  # rolls the fleet",
                _ => "",
            };
            let _ = writeln!(out, "      {:<name_width$} = {line}{note}", f.name);
        }
        if c.action == Action::Roll {
            if let Some(r) = c.inputs.get("rollout") {
                let _ = writeln!(
                    out,
                    "      rollout: {}",
                    describe_rollout(r, c.inputs.get("desired_capacity"))
                );
            }
        }
        if c.action != Action::Create {
            for r in &c.reasons {
                let _ = writeln!(out, "      reason: {r}");
            }
        }
    }

    fn show(&self, v: &Shown) -> String {
        match v {
            Shown::Known(j) => {
                let mut s = show_json(j);
                if let Json::String(id) = j {
                    if let Some(name) = self.images.get(id) {
                        let _ = write!(s, " ({name})");
                    }
                }
                s
            }
            Shown::KnownAfterApply(from) => format!("(known after apply: {from})"),
            Shown::Partial(j) => show_json(j),
            Shown::Secret(_) => "(secret)".to_owned(),
        }
    }
}

fn show_json(j: &Json) -> String {
    if let Some((res, out)) = as_reference(j) {
        return format!("(known after apply: {res}.{out})");
    }
    match j {
        Json::Array(a) => format!("[{}]", a.iter().map(show_json).collect::<Vec<_>>().join(", ")),
        Json::Object(m) => format!(
            "{{{}}}",
            m.iter().map(|(k, v)| format!("{k}: {}", show_json(v))).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

fn describe_rollout(r: &Json, desired: Option<&Json>) -> String {
    let get = |k: &str| r.get(k).and_then(Json::as_u64).unwrap_or(0);
    let strategy = r.get("strategy").and_then(Json::as_str).unwrap_or("rolling");
    let desired = desired.and_then(Json::as_u64).unwrap_or(0) as u32;
    let rollout: Option<crate::rollout::Rollout> = serde_json::from_value(r.clone()).ok();
    let batch = rollout.map(|ro| ro.batch_size(desired)).unwrap_or(1);
    format!(
        "{strategy}, min healthy {}%, max healthy {}%, batches of {batch} of {desired} instances",
        get("min_healthy_percent"),
        get("max_healthy_percent"),
    )
}
