//! What a watch event says about an attempt: the Pod's phase and its main container's state, mapped to
//! the few states the engine acts on.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::pod::MAIN_CONTAINER;

/// An attempt's state as the Pod shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// Not running yet; the reason when the Pod says why (`ImagePullBackOff`, `Unschedulable: …`).
    Pending(Option<String>),
    Running,
    Succeeded,
    /// Finished unsuccessfully, or can never start; the message says why.
    Failed(String),
}

impl Observed {
    pub fn is_final(&self) -> bool {
        matches!(self, Observed::Succeeded | Observed::Failed(_))
    }
}

/// Waiting reasons after which the container never starts (retrying the same Pod cannot help).
const FATAL_WAITING: &[&str] =
    &["InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError"];

fn main_status(pod: &Pod) -> Option<&ContainerStatus> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find(|s| s.name == MAIN_CONTAINER).or_else(|| statuses.first())
}

fn join(reason: Option<&str>, message: Option<&str>) -> Option<String> {
    match (reason.filter(|r| !r.is_empty()), message.filter(|m| !m.is_empty())) {
        (Some(r), Some(m)) => Some(format!("{r}: {m}")),
        (Some(r), None) => Some(r.to_owned()),
        (None, Some(m)) => Some(m.to_owned()),
        (None, None) => None,
    }
}

/// Why a Pod is not running yet: its main container's waiting reason, else an unschedulable condition.
fn pending_reason(pod: &Pod) -> Option<String> {
    if let Some(w) = main_status(pod).and_then(|s| s.state.as_ref()).and_then(|s| s.waiting.as_ref()) {
        if let Some(r) = join(w.reason.as_deref(), w.message.as_deref()) {
            return Some(r);
        }
    }
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .and_then(|c| join(c.reason.as_deref(), c.message.as_deref()))
}

/// The attempt state a Pod shows.
pub fn observe(pod: &Pod) -> Observed {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let main = main_status(pod).and_then(|s| s.state.as_ref());
    match phase {
        "Succeeded" => Observed::Succeeded,
        "Failed" => {
            if let Some(t) = main.and_then(|s| s.terminated.as_ref()) {
                let mut msg = format!("exited with status {}", t.exit_code);
                if let Some(why) = join(t.reason.as_deref().filter(|r| *r != "Error"), t.message.as_deref()) {
                    msg = format!("{msg} ({why})");
                }
                return Observed::Failed(msg);
            }
            let why = status
                .and_then(|s| join(s.reason.as_deref(), s.message.as_deref()))
                .unwrap_or_else(|| "no reason given".to_owned());
            Observed::Failed(format!("the Pod failed: {why}"))
        }
        "Running" => Observed::Running,
        _ => {
            if let Some(w) = main.and_then(|s| s.waiting.as_ref()) {
                if w.reason.as_deref().is_some_and(|r| FATAL_WAITING.contains(&r)) {
                    let why = join(w.reason.as_deref(), w.message.as_deref()).unwrap_or_default();
                    return Observed::Failed(format!("the container cannot start: {why}"));
                }
            }
            Observed::Pending(pending_reason(pod))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    #[test]
    fn phases_map_to_attempt_states() {
        assert_eq!(observe(&pod(json!({}))), Observed::Pending(None));
        assert_eq!(observe(&pod(json!({"phase": "Running"}))), Observed::Running);
        assert_eq!(observe(&pod(json!({"phase": "Succeeded"}))), Observed::Succeeded);
        let failed = pod(json!({"phase": "Failed", "containerStatuses": [{
            "name": "main", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 3, "reason": "Error"}}
        }]}));
        assert_eq!(observe(&failed), Observed::Failed("exited with status 3".into()));
        let oom = pod(json!({"phase": "Failed", "containerStatuses": [{
            "name": "main", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
        }]}));
        assert_eq!(observe(&oom), Observed::Failed("exited with status 137 (OOMKilled)".into()));
        let deadline = pod(json!({"phase": "Failed", "reason": "DeadlineExceeded", "message": "too long"}));
        assert_eq!(observe(&deadline), Observed::Failed("the Pod failed: DeadlineExceeded: too long".into()));
        assert!(observe(&deadline).is_final() && !observe(&pod(json!({"phase": "Running"}))).is_final());
    }

    #[test]
    fn waiting_reasons_are_pending_or_fatal() {
        let waiting = |reason: &str| {
            pod(json!({"phase": "Pending", "containerStatuses": [{
                "name": "main", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": reason, "message": "m"}}
            }]}))
        };
        assert_eq!(observe(&waiting("ImagePullBackOff")), Observed::Pending(Some("ImagePullBackOff: m".into())));
        assert_eq!(
            observe(&waiting("InvalidImageName")),
            Observed::Failed("the container cannot start: InvalidImageName: m".into())
        );
        let unschedulable = pod(json!({"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"
        }]}));
        assert_eq!(observe(&unschedulable), Observed::Pending(Some("Unschedulable: 0/3 nodes".into())));
    }
}
