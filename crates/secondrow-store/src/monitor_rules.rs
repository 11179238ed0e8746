//! Monitor rules: a condition on a deployment's monitoring figures that starts a pipeline run when it
//! holds, at most once per cool-down, and the runs they started (linked to the rule and the deployment).
//! The condition is stored as text; parsing it is the monitor's business.

use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{new_id, now_ms, Result, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitorRule {
    pub id: String,
    pub namespace: String,
    pub deployment: String,
    pub condition: String,
    pub pipeline_id: String,
    pub pipeline_version_id: String,
    pub experiment_id: String,
    /// Run parameters (a JSON object).
    pub parameters: Value,
    /// The run parameter that receives the logged window's file path.
    pub window_parameter: String,
    pub cooldown_ms: i64,
    pub last_fired_at: Option<i64>,
    pub created_at: i64,
}

/// A new rule (the caller checked the condition, the deployment and the pipeline version).
#[derive(Debug, Clone)]
pub struct NewMonitorRule<'a> {
    pub namespace: &'a str,
    pub deployment: &'a str,
    pub condition: &'a str,
    pub pipeline_id: &'a str,
    pub pipeline_version_id: &'a str,
    pub experiment_id: &'a str,
    pub parameters: &'a Value,
    pub window_parameter: &'a str,
    pub cooldown_ms: i64,
}

/// A run a rule started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitorRuleRun {
    pub rule_id: String,
    pub run_id: String,
    pub deployment: String,
    pub version: String,
    pub window_uri: String,
    pub fired_at: i64,
}

impl Store {
    pub async fn create_monitor_rule(&self, new: &NewMonitorRule<'_>) -> Result<MonitorRule> {
        if new.cooldown_ms < 0 {
            return Err(StoreError::InvalidArgument(format!(
                "cooldown: must not be negative, got {} ms",
                new.cooldown_ms
            )));
        }
        if !new.parameters.is_object() {
            return Err(StoreError::InvalidArgument("parameters: must be an object".into()));
        }
        let id = new_id();
        sqlx::query(
            "INSERT INTO monitor_rules (id, namespace, deployment, condition, pipeline_id, pipeline_version_id,
                 experiment_id, parameters, window_parameter, cooldown_ms, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&id)
        .bind(new.namespace)
        .bind(new.deployment)
        .bind(new.condition)
        .bind(new.pipeline_id)
        .bind(new.pipeline_version_id)
        .bind(new.experiment_id)
        .bind(new.parameters.to_string())
        .bind(new.window_parameter)
        .bind(new.cooldown_ms)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        self.get_monitor_rule(&id).await
    }

    pub async fn get_monitor_rule(&self, id: &str) -> Result<MonitorRule> {
        let row = sqlx::query("SELECT * FROM monitor_rules WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        match row {
            Some(r) => rule_from_row(&r),
            None => Err(StoreError::NotFound { kind: "monitor rule", id: id.to_owned() }),
        }
    }

    /// Rules of a deployment (every rule when `None`), of a namespace when given, oldest first.
    pub async fn list_monitor_rules(
        &self,
        deployment: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Vec<MonitorRule>> {
        let rows = sqlx::query("SELECT * FROM monitor_rules ORDER BY created_at, id").fetch_all(&self.pool).await?;
        let rules = rows.iter().map(rule_from_row).collect::<Result<Vec<_>>>()?;
        Ok(rules
            .into_iter()
            .filter(|r| deployment.is_none_or(|d| r.deployment == d) && namespace.is_none_or(|ns| r.namespace == ns))
            .collect())
    }

    pub async fn delete_monitor_rule(&self, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM monitor_rules WHERE id = $1").bind(id).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "monitor rule", id: id.to_owned() });
        }
        Ok(())
    }

    /// Claims a firing of rule `id` at `now`: true when its cool-down has passed (it is then marked as
    /// fired at `now`), false otherwise. One statement, so two evaluators never both claim.
    pub async fn claim_monitor_rule_fire(&self, id: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE monitor_rules SET last_fired_at = $1
             WHERE id = $2 AND (last_fired_at IS NULL OR last_fired_at + cooldown_ms <= $1)",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn record_monitor_rule_run(&self, run: &MonitorRuleRun) -> Result<()> {
        sqlx::query(
            "INSERT INTO monitor_rule_runs (rule_id, run_id, deployment, version, window_uri, fired_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&run.rule_id)
        .bind(&run.run_id)
        .bind(&run.deployment)
        .bind(&run.version)
        .bind(&run.window_uri)
        .bind(run.fired_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Runs started by rules of `deployment`, newest first.
    pub async fn list_monitor_rule_runs(&self, deployment: &str) -> Result<Vec<MonitorRuleRun>> {
        let rows = sqlx::query("SELECT * FROM monitor_rule_runs WHERE deployment = $1 ORDER BY fired_at DESC, run_id")
            .bind(deployment)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(MonitorRuleRun {
                    rule_id: r.try_get("rule_id")?,
                    run_id: r.try_get("run_id")?,
                    deployment: r.try_get("deployment")?,
                    version: r.try_get("version")?,
                    window_uri: r.try_get("window_uri")?,
                    fired_at: r.try_get("fired_at")?,
                })
            })
            .collect()
    }

    /// The pipeline a version id belongs to.
    pub async fn pipeline_of_version(&self, version_id: &str) -> Result<String> {
        let row = sqlx::query("SELECT pipeline_id FROM pipeline_versions WHERE id = $1")
            .bind(version_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound { kind: "pipeline version", id: version_id.to_owned() })?;
        Ok(row.try_get("pipeline_id")?)
    }
}

fn rule_from_row(r: &AnyRow) -> Result<MonitorRule> {
    let parameters: String = r.try_get("parameters")?;
    Ok(MonitorRule {
        id: r.try_get("id")?,
        namespace: r.try_get("namespace")?,
        deployment: r.try_get("deployment")?,
        condition: r.try_get("condition")?,
        pipeline_id: r.try_get("pipeline_id")?,
        pipeline_version_id: r.try_get("pipeline_version_id")?,
        experiment_id: r.try_get("experiment_id")?,
        parameters: serde_json::from_str(&parameters)
            .map_err(|e| StoreError::Corrupt(format!("monitor rule parameters: {e}")))?,
        window_parameter: r.try_get("window_parameter")?,
        cooldown_ms: r.try_get("cooldown_ms")?,
        last_fired_at: r.try_get("last_fired_at")?,
        created_at: r.try_get("created_at")?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tests::{per_backend, TestDb};

    per_backend!(rules_round_trip_and_a_cool_down_allows_one_claim);

    async fn rules_round_trip_and_a_cool_down_allows_one_claim(db: &TestDb) {
        let s = &db.store;
        let params = json!({"n": 1});
        let new = NewMonitorRule {
            namespace: "team",
            deployment: "churn",
            condition: "psi(x) > 0.2",
            pipeline_id: "p",
            pipeline_version_id: "v",
            experiment_id: "e",
            parameters: &params,
            window_parameter: "source",
            cooldown_ms: 1000,
        };
        let rule = s.create_monitor_rule(&new).await.unwrap();
        assert_eq!(
            (rule.condition.as_str(), rule.parameters.clone(), rule.last_fired_at),
            ("psi(x) > 0.2", params.clone(), None)
        );
        assert_eq!(s.list_monitor_rules(Some("churn"), None).await.unwrap(), std::slice::from_ref(&rule));
        assert!(s.list_monitor_rules(Some("other"), None).await.unwrap().is_empty());
        assert!(s.list_monitor_rules(None, Some("elsewhere")).await.unwrap().is_empty());

        // The first claim wins; the next within the cool-down does not; after it, one claim again.
        assert!(s.claim_monitor_rule_fire(&rule.id, 10_000).await.unwrap());
        assert!(!s.claim_monitor_rule_fire(&rule.id, 10_500).await.unwrap());
        assert!(s.claim_monitor_rule_fire(&rule.id, 11_000).await.unwrap());
        assert_eq!(s.get_monitor_rule(&rule.id).await.unwrap().last_fired_at, Some(11_000));

        let run = MonitorRuleRun {
            rule_id: rule.id.clone(),
            run_id: "r1".into(),
            deployment: "churn".into(),
            version: "1".into(),
            window_uri: "/tmp/w.csv".into(),
            fired_at: 11_000,
        };
        s.record_monitor_rule_run(&run).await.unwrap();
        assert_eq!(s.list_monitor_rule_runs("churn").await.unwrap(), [run]);

        let bad = NewMonitorRule { cooldown_ms: -1, ..new.clone() };
        assert!(s.create_monitor_rule(&bad).await.unwrap_err().to_string().contains("cooldown"));
        s.delete_monitor_rule(&rule.id).await.unwrap();
        assert!(matches!(s.delete_monitor_rule(&rule.id).await.unwrap_err(), StoreError::NotFound { .. }));
        assert!(matches!(s.pipeline_of_version("nope").await.unwrap_err(), StoreError::NotFound { .. }));
    }
}
