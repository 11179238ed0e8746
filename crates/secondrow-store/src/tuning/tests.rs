use crate::tests::{per_backend, TestDb};
use crate::tuning::*;
use crate::StoreError;

per_backend!(tuning_experiments_and_trials_round_trip, tuning_trial_cap_and_stop_are_transactional);

fn assign(x: &str) -> Vec<ParameterAssignment> {
    vec![ParameterAssignment { name: "x".into(), value: x.into() }]
}

async fn tuning_experiments_and_trials_round_trip(db: &TestDb) {
    let s = &db.store;
    let e = s.create_tuning_experiment("team-a", "quad", "kind: Experiment\n").await.unwrap();
    assert_eq!(e.state, ExperimentState::Created);
    assert!(matches!(s.create_tuning_experiment("team-a", "quad", "x").await, Err(StoreError::AlreadyExists { .. })));
    // The same name in another namespace is another experiment.
    s.create_tuning_experiment("team-b", "quad", "y").await.unwrap();
    assert_eq!(s.list_tuning_experiments(Some("team-a")).await.unwrap(), vec![e.clone()]);
    assert_eq!(s.list_tuning_experiments(None).await.unwrap().len(), 2);
    assert!(matches!(s.get_tuning_experiment("team-c", "quad").await, Err(StoreError::NotFound { .. })));

    let running = s
        .transition_tuning_experiment(&e.id, &[ExperimentState::Created], ExperimentState::Running, None, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(running.state, ExperimentState::Running);
    // Not from Created any more: no change.
    assert!(s
        .transition_tuning_experiment(&e.id, &[ExperimentState::Created], ExperimentState::Failed, None, None)
        .await
        .unwrap()
        .is_none());

    let added = s
        .add_tuning_trials(&e.id, &[("quad-a".into(), assign("0.5")), ("quad-b".into(), assign("1.5"))], None)
        .await
        .unwrap();
    assert_eq!(added.iter().map(|t| t.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert!(s.start_tuning_trial(&added[0].id, "run-1").await.unwrap());
    let obs = vec![
        Observation { name: "loss".into(), value: 2.0, step: 1 },
        Observation { name: "loss".into(), value: 1.0, step: 2 },
    ];
    s.record_trial_observations(&added[0].id, &obs[..1]).await.unwrap();
    let outcome = TrialOutcome {
        state: TrialState::Succeeded,
        objective: Some(1.0),
        observations: obs.clone(),
        reason: None,
        message: None,
    };
    assert!(s.finish_tuning_trial(&added[0].id, &outcome).await.unwrap());
    // A finished trial does not finish (or start) again.
    assert!(!s
        .finish_tuning_trial(&added[0].id, &TrialOutcome { state: TrialState::Failed, ..outcome.clone() })
        .await
        .unwrap());
    assert!(!s.start_tuning_trial(&added[0].id, "run-2").await.unwrap());
    assert!(s
        .finish_tuning_trial(&added[1].id, &TrialOutcome { state: TrialState::Running, ..outcome.clone() })
        .await
        .is_err());

    let trials = s.list_tuning_trials(&e.id).await.unwrap();
    assert_eq!(trials[0].state, TrialState::Succeeded);
    assert_eq!(trials[0].objective, Some(1.0));
    assert_eq!(trials[0].observations, obs);
    assert_eq!(trials[0].run_id.as_deref(), Some("run-1"));
    assert_eq!(trials[0].assignments, assign("0.5"));
    assert!(trials[0].finished_at.is_some());
    assert_eq!(trials[1].state, TrialState::Created);
    assert_eq!(s.find_trial_of_run("run-1").await.unwrap().unwrap().name, "quad-a");

    s.set_optimal_trial(&e.id, Some("quad-a")).await.unwrap();
    let done = s
        .transition_tuning_experiment(
            &e.id,
            &[ExperimentState::Running],
            ExperimentState::Succeeded,
            Some("ExperimentGoalReached"),
            Some("goal reached"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.optimal_trial.as_deref(), Some("quad-a"));
    assert_eq!(done.reason.as_deref(), Some("ExperimentGoalReached"));
    assert!(done.finished_at.is_some());
}

async fn tuning_trial_cap_and_stop_are_transactional(db: &TestDb) {
    let s = &db.store;
    let e = s.create_tuning_experiment("default", "capped", "spec").await.unwrap();
    // Four writers race to add two trials each under a cap of five: exactly five exist, numbered 1..=5.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (s, id) = (s.clone(), e.id.clone());
        tasks.push(tokio::spawn(async move {
            let batch: Vec<_> = (0..2).map(|i| (format!("capped-{w}{i}"), assign("1"))).collect();
            s.add_tuning_trials(&id, &batch, Some(5)).await.unwrap().len()
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 5);
    let trials = s.list_tuning_trials(&e.id).await.unwrap();
    assert_eq!(trials.iter().map(|t| t.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);

    let outcome = TrialOutcome {
        state: TrialState::Failed,
        objective: None,
        observations: vec![],
        reason: Some("TrialFailed".into()),
        message: Some("exit 1".into()),
    };
    s.finish_tuning_trial(&trials[0].id, &outcome).await.unwrap();
    let stopped = s.stop_tuning_experiment(&e.id, "stopped by the user").await.unwrap().unwrap();
    assert_eq!(stopped.state, ExperimentState::Stopped);
    let trials = s.list_tuning_trials(&e.id).await.unwrap();
    assert_eq!(trials[0].state, TrialState::Failed, "a finished trial keeps its state");
    assert!(trials[1..].iter().all(|t| t.state == TrialState::Killed));
    // Stopping again changes nothing.
    assert!(s.stop_tuning_experiment(&e.id, "again").await.unwrap().is_none());
}
