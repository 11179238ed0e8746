use crate::notebooks::*;
use crate::tests::{per_backend, TestDb};
use crate::*;

per_backend!(notebooks_are_unique_per_namespace_and_change_state_only_from_the_right_one);

fn new<'a>(namespace: &'a str, name: &'a str, packages: &'a [String]) -> NewNotebook<'a> {
    NewNotebook { namespace, name, python: None, packages, secret: "s3cret", workspace: "/w" }
}

async fn notebooks_are_unique_per_namespace_and_change_state_only_from_the_right_one(db: &TestDb) {
    let s = &db.store;
    let pkgs = vec!["pandas==2.2.0".to_owned()];
    let nb = s.create_notebook(&new("team-a", "nb1", &pkgs)).await.unwrap();
    assert_eq!(nb.state, NotebookState::Starting);
    assert_eq!(nb.packages, pkgs);
    assert_eq!(nb.secret, "s3cret");
    // The secret never leaves in JSON.
    assert!(!serde_json::to_string(&nb).unwrap().contains("s3cret"));

    // A clash in the namespace; the same name in another namespace is fine; bad names are refused.
    let err = s.create_notebook(&new("team-a", "nb1", &[])).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
    s.create_notebook(&new("team-b", "nb1", &[])).await.unwrap();
    for bad in ["", "Nb", "a/b", "-a", "a_b", "..", &"x".repeat(64)] {
        let err = s.create_notebook(&new("team-a", bad, &[])).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidArgument(_)), "{bad}: {err}");
    }

    // Starting → process → Running; a second `running` is refused.
    let nb = s.notebook_starting("team-a", "nb1", 4242, true).await.unwrap();
    assert_eq!(nb.port, Some(4242));
    let nb = s.notebook_process("team-a", "nb1", 123, 456).await.unwrap();
    assert_eq!((nb.pid, nb.pid_started), (Some(123), Some(456)));
    let nb = s.notebook_running("team-a", "nb1").await.unwrap();
    assert_eq!(nb.state, NotebookState::Running);
    assert!(s.notebook_running("team-a", "nb1").await.is_err());
    // A start of a running notebook (not a restart) is refused.
    assert!(s.notebook_starting("team-a", "nb1", 1, false).await.is_err());

    // Activity only moves forward.
    s.notebook_activity("team-a", "nb1", nb.last_activity + 1000).await.unwrap();
    s.notebook_activity("team-a", "nb1", nb.last_activity - 1000).await.unwrap();
    assert_eq!(s.get_notebook("team-a", "nb1").await.unwrap().last_activity, nb.last_activity + 1000);

    // Culled with a reason: port and process cleared; a second stop is refused.
    let nb = s.notebook_down("team-a", "nb1", NotebookState::Culled, Some("idle for 60 s")).await.unwrap();
    assert_eq!(
        (nb.state, nb.reason.as_deref(), nb.port, nb.pid),
        (NotebookState::Culled, Some("idle for 60 s"), None, None)
    );
    assert!(s.notebook_down("team-a", "nb1", NotebookState::Stopped, None).await.is_err());
    assert!(s.notebook_down("team-a", "nb1", NotebookState::Running, None).await.is_err());
    // Start again from Culled: the reason goes.
    let nb = s.notebook_starting("team-a", "nb1", 4343, false).await.unwrap();
    assert_eq!((nb.state, nb.reason, nb.port), (NotebookState::Starting, None, Some(4343)));
    s.notebook_down("team-a", "nb1", NotebookState::Failed, Some("exited with code 1")).await.unwrap();

    let all = s.list_notebooks(None).await.unwrap();
    assert_eq!(
        all.iter().map(|n| (n.namespace.as_str(), n.name.as_str())).collect::<Vec<_>>(),
        [("team-a", "nb1"), ("team-b", "nb1")]
    );
    assert_eq!(s.list_notebooks(Some("team-b")).await.unwrap().len(), 1);

    let gone = s.delete_notebook("team-a", "nb1").await.unwrap();
    assert_eq!(gone.state, NotebookState::Failed);
    assert!(matches!(s.get_notebook("team-a", "nb1").await, Err(StoreError::NotFound { .. })));
    assert!(matches!(s.delete_notebook("team-a", "nb1").await, Err(StoreError::NotFound { .. })));
}
