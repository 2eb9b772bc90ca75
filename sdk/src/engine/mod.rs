//! The engine: applies a [`Plan`] through a [`Provider`], recording every step in state.
//!
//! Steps run concurrently as soon as the steps they wait for are done, up to
//! [`Options::parallelism`] at a time, on tokio. Calls are rate limited per API category (token
//! buckets shaped like AWS's) and retried with exponential backoff and jitter when throttled or
//! transiently failing. Before a create, the intent and its idempotency token are recorded, so
//! that after a crash the next run adopts what was created instead of creating it twice
//! ([`Engine::reconcile`]). On a failure, or on an interrupt (Ctrl-C), no new step starts, the
//! steps in flight finish and are recorded, the state is saved, and the error names the
//! resource and the call.

mod fleet;
mod resolve;
mod retry;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value as Json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use resolve::Resolved;
pub use resolve::{Secrets, env_secrets, secret_var};
pub use retry::{Limiter, Retry};

use crate::error::{Error, Result};
use crate::plan::{Action, Change, Operation, Plan, Step, StepAction};
use crate::provider::{self, Category, Create, Provider, tags};
use crate::state::{
    Deposed, Entry, Intent, Outcome, ReleaseRecord, ResourceState, State, Store, now,
};

/// What the engine reports as it goes (for progress bars and logs).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A step started.
    Started {
        /// The logical id.
        id: String,
        /// The step's action.
        action: StepAction,
    },
    /// A step finished.
    Finished {
        /// The logical id.
        id: String,
        /// The step's action.
        action: StepAction,
        /// How long it took.
        elapsed: Duration,
    },
    /// A step failed.
    Failed {
        /// The logical id.
        id: String,
        /// The step's action.
        action: StepAction,
        /// Why.
        error: String,
    },
    /// A call is retried.
    Retrying {
        /// The logical id.
        id: String,
        /// The call (`CreateVpc`).
        call: String,
        /// The retry's number.
        attempt: u32,
        /// The wait before it.
        delay: Duration,
        /// The error that caused it.
        error: String,
    },
    /// Progress of a fleet's roll.
    Fleet {
        /// The group's logical id.
        id: String,
        /// What happened.
        message: String,
    },
    /// A create interrupted by a crash was found and adopted.
    Adopted {
        /// The logical id.
        id: String,
        /// The object adopted.
        physical_id: String,
    },
}

/// How the engine runs.
#[derive(Clone)]
#[must_use]
pub struct Options {
    /// Steps in flight at once (default 10).
    pub parallelism: usize,
    /// Retries of failed calls.
    pub retry: Retry,
    /// How often a rolling fleet is polled (default 1 s).
    pub poll_interval: Duration,
    /// Where secrets come from (default: `GRAVEN_SECRET_<NAME>` environment variables).
    pub secrets: Secrets,
    /// Where events go.
    pub events: Option<mpsc::UnboundedSender<Event>>,
    /// Becomes `true` to stop (Ctrl-C): no new step starts, steps in flight finish.
    pub interrupt: Option<watch::Receiver<bool>>,
    /// The stack inputs, recorded with the release.
    pub vars: BTreeMap<String, String>,
    /// The images the release uses, recorded with it (name to `version (ami-...)`).
    pub images: BTreeMap<String, String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            parallelism: 10,
            retry: Retry::default(),
            poll_interval: Duration::from_secs(1),
            secrets: env_secrets(),
            events: None,
            interrupt: None,
            vars: BTreeMap::new(),
            images: BTreeMap::new(),
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("parallelism", &self.parallelism)
            .field("retry", &self.retry)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Sets the number of steps in flight at once (at least 1).
    pub fn parallelism(mut self, n: usize) -> Options {
        self.parallelism = n.max(1);
        self
    }

    /// Sends events to `tx`.
    pub fn events(mut self, tx: mpsc::UnboundedSender<Event>) -> Options {
        self.events = Some(tx);
        self
    }

    /// Stops when `rx` becomes `true`.
    pub fn interrupt(mut self, rx: watch::Receiver<bool>) -> Options {
        self.interrupt = Some(rx);
        self
    }

    /// Sets where secrets come from.
    pub fn secrets(mut self, secrets: Secrets) -> Options {
        self.secrets = secrets;
        self
    }

    /// Sets the fleet poll interval.
    pub fn poll_interval(mut self, every: Duration) -> Options {
        self.poll_interval = every;
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, retry: Retry) -> Options {
        self.retry = retry;
        self
    }

    /// Records the stack inputs and images with the release.
    pub fn release_info(
        mut self,
        vars: BTreeMap<String, String>,
        images: BTreeMap<String, String>,
    ) -> Options {
        self.vars = vars;
        self.images = images;
        self
    }
}

/// What an apply did.
#[derive(Debug, Clone)]
#[must_use]
pub struct Report {
    /// The release's number.
    pub release: u64,
    /// Steps run, by action (`create: 3`).
    pub summary: BTreeMap<String, u64>,
    /// The state as saved.
    pub state: State,
}

/// Applies plans through a provider, recording state in a store.
pub struct Engine {
    provider: Arc<dyn Provider>,
    store: Arc<dyn Store>,
    options: Options,
    limiter: Arc<Limiter>,
}

impl Engine {
    /// An engine with default options; the rate limits are the provider's.
    pub fn new(provider: Arc<dyn Provider>, store: Arc<dyn Store>) -> Engine {
        Engine::with_options(provider, store, Options::default())
    }

    /// An engine with `options`.
    pub fn with_options(
        provider: Arc<dyn Provider>,
        store: Arc<dyn Store>,
        options: Options,
    ) -> Engine {
        let limits = [Category::Describe, Category::Mutate, Category::Launch]
            .into_iter()
            .filter_map(|c| provider.rate_limit(c).map(|l| (c, l)));
        let limiter = Arc::new(Limiter::new(limits));
        Engine { provider, store, options, limiter }
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Resolves the creates a crashed run left pending: each is looked up by its token and
    /// adopted into state when found, forgotten when not. Returns the ids adopted.
    ///
    /// # Errors
    /// A provider or store failure.
    pub async fn reconcile(&self, state: &mut State) -> Result<Vec<String>> {
        let pending: Vec<Intent> = state.pending.values().cloned().collect();
        let mut adopted = Vec::new();
        for intent in pending {
            let found = retry::with_retry(
                &self.options.retry,
                &self.limiter,
                Category::Describe,
                || self.provider.find_by_token(&intent.kind, &intent.token),
                |_, _, _| {},
            )
            .await
            .map_err(|e| provider_error(&intent.id, &e))?;
            if let Some(o) = found {
                let previous = state.resources.get(&intent.id).cloned();
                let mut deposed = previous.as_ref().map(|p| p.deposed.clone()).unwrap_or_default();
                if let Some(p) = previous.as_ref().filter(|p| p.physical_id != o.physical_id) {
                    deposed.push(Deposed {
                        physical_id: p.physical_id.clone(),
                        inputs: p.inputs.clone(),
                        outputs: p.outputs.clone(),
                        token: p.token.clone(),
                    });
                }
                deposed.retain(|d| d.physical_id != o.physical_id);
                let at = now();
                let r = ResourceState {
                    id: intent.id.clone(),
                    kind: intent.kind.clone(),
                    physical_id: o.physical_id.clone(),
                    inputs: if intent.inputs.is_empty() {
                        o.inputs.clone()
                    } else {
                        intent.inputs.clone()
                    },
                    outputs: o.outputs.clone(),
                    dependencies: intent.dependencies.clone(),
                    protect: previous.as_ref().is_some_and(|p| p.protect),
                    destroy_before_create: previous
                        .as_ref()
                        .is_some_and(|p| p.destroy_before_create),
                    token: intent.token.clone(),
                    created_at: at.clone(),
                    updated_at: at,
                    release: intent.release,
                    deposed,
                };
                self.record(state, Entry::Put(r)).await?;
                self.emit(Event::Adopted { id: intent.id.clone(), physical_id: o.physical_id });
                adopted.push(intent.id.clone());
                self.record(state, Entry::Settle { id: intent.id.clone() }).await?;
            } else {
                // Not found: the create failed, or it is still being processed by the cloud
                // (the run died just after sending it). The next create of the resource sends
                // the same token, so the cloud returns or refuses the first one.
                let entry = Entry::Abandon { id: intent.id.clone(), token: intent.token.clone() };
                self.record(state, entry).await?;
            }
        }
        Ok(adopted)
    }

    async fn record(&self, state: &mut State, entry: Entry) -> Result<()> {
        self.store.record(&state.stack, &entry).await?;
        state.apply_owned(entry);
        Ok(())
    }

    fn emit(&self, e: Event) {
        if let Some(tx) = &self.options.events {
            let _ = tx.send(e);
        }
    }

    /// Applies `plan` to `state` (loaded, reconciled, and locked by the caller), then saves
    /// the state. Returns what was done.
    ///
    /// # Errors
    /// [`Error::Plan`] when the state moved since the plan was made; the first step's error
    /// ([`Error::Provider`] names the resource and the call), after the steps in flight have
    /// finished and the state is saved; [`Error::Interrupted`].
    pub async fn apply(&self, plan: &Plan, mut state: State) -> Result<Report> {
        if plan.stack != state.stack {
            return Err(Error::Plan(format!(
                "the plan is for stack `{}`, the state for `{}`",
                plan.stack, state.stack
            )));
        }
        let lineage_moved = plan.basis.lineage.as_ref().is_some_and(|l| *l != state.lineage);
        if lineage_moved || plan.basis.serial != state.serial {
            return Err(Error::Plan(format!(
                "the state moved since the plan was made (serial {} then, {} now); make the plan again",
                plan.basis.serial, state.serial
            )));
        }
        if !state.pending.is_empty() {
            return Err(Error::Plan(
                "the state has creates left pending by an interrupted run; make the plan again (it adopts them)".into(),
            ));
        }
        let number = state.next_release_number();
        let operation = match plan.operation {
            Operation::Apply => "apply",
            Operation::Destroy => "destroy",
        };
        let mut record = ReleaseRecord {
            number,
            started_at: now(),
            finished_at: None,
            outcome: Outcome::InProgress,
            operation: operation.to_owned(),
            vars: self.options.vars.clone(),
            images: self.options.images.clone(),
            summary: BTreeMap::new(),
            error: None,
        };
        self.record(&mut state, Entry::Release(record.clone())).await?;

        let shared = Arc::new(Shared {
            provider: self.provider.clone(),
            store: self.store.clone(),
            limiter: self.limiter.clone(),
            options: self.options.clone(),
            stack: plan.stack.clone(),
            state: Mutex::new(state),
            writes: tokio::sync::Mutex::new(()),
            release: number,
        });
        let (summary, failure) = run_steps(&shared, plan).await;
        let Ok(shared) = Arc::try_unwrap(shared) else {
            return Err(Error::Plan("internal: steps still running after the apply".into()));
        };
        let mut state =
            shared.state.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        record.finished_at = Some(now());
        record.summary.clone_from(&summary);
        record.outcome = match &failure {
            None => Outcome::Succeeded,
            Some(Error::Interrupted) => Outcome::Interrupted,
            Some(_) => Outcome::Failed,
        };
        record.error = failure.as_ref().map(ToString::to_string);
        self.record(&mut state, Entry::Release(record)).await?;
        let saved = self.store.save(&state).await?;
        // The state as it was before the save is a copy of `saved`: freeing a large one takes a
        // while (tens of milliseconds for 10,000 resources), so it is freed off this task.
        if state.resources.len() > 1000 {
            tokio::task::spawn_blocking(move || drop(state));
        }
        match failure {
            None => Ok(Report { release: number, summary, state: saved }),
            Some(e) => Err(e),
        }
    }
}

/// One step as its task gets it: what the step does, its change without the inputs and the
/// diffs (which stay in the caller's plan), and its inputs, resolved when the step became ready
/// (the outputs of the steps it waits for are in the state by then).
struct Work {
    id: String,
    action: StepAction,
    physical_id: Option<String>,
    change: Option<Change>,
    resolved: Option<Result<Resolved>>,
}

impl Work {
    fn new(shared: &Shared, step: &Step, change: Option<&Change>) -> Work {
        let resolved = match (step.action, change) {
            (StepAction::Create | StepAction::Update | StepAction::Roll, Some(c)) => Some(
                shared.snapshot(|s| resolve::resolve(&c.id, &c.inputs, s, &shared.options.secrets)),
            ),
            _ => None,
        };
        Work {
            id: step.id.clone(),
            action: step.action,
            physical_id: step.physical_id.clone(),
            change: change.map(|c| Change {
                id: c.id.clone(),
                kind: c.kind.clone(),
                action: c.action,
                reasons: Vec::new(),
                fields: Vec::new(),
                inputs: Map::new(),
                dependencies: c.dependencies.clone(),
                physical_id: c.physical_id.clone(),
                destroy_before_create: c.destroy_before_create,
                protect: c.protect,
            }),
            resolved,
        }
    }

    /// The change and the resolved inputs of a create or an update.
    fn take(&mut self) -> Result<(&Change, Resolved)> {
        let missing = || {
            Error::Plan(format!("internal: the plan has a step for `{}` but no change", self.id))
        };
        let resolved = self.resolved.take().ok_or_else(missing)??;
        Ok((self.change.as_ref().ok_or_else(missing)?, resolved))
    }
}

/// What the step tasks share.
struct Shared {
    provider: Arc<dyn Provider>,
    store: Arc<dyn Store>,
    limiter: Arc<Limiter>,
    options: Options,
    stack: String,
    state: Mutex<State>,
    /// Held by the steps that read a resource's record, change it and record it again.
    writes: tokio::sync::Mutex<()>,
    release: u64,
}

impl Shared {
    fn emit(&self, e: Event) {
        if let Some(tx) = &self.options.events {
            let _ = tx.send(e);
        }
    }

    /// Whether the run was asked to stop (Ctrl-C).
    fn interrupted(&self) -> bool {
        self.options.interrupt.as_ref().is_some_and(|rx| *rx.borrow())
    }

    fn snapshot<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        let guard = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&guard)
    }

    async fn record(&self, entry: Entry) -> Result<()> {
        self.store.record(&self.stack, &entry).await?;
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).apply_owned(entry);
        Ok(())
    }

    /// Calls the provider with retries; the error names the resource and the call.
    async fn call<T, F, Fut>(&self, id: &str, call: &str, f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = provider::Result<T>>,
    {
        self.call_raw(id, call, f).await.map_err(|e| provider_error(id, &e))
    }

    /// As [`Shared::call`], keeping the provider's error.
    async fn call_raw<T, F, Fut>(&self, id: &str, call: &str, f: F) -> provider::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = provider::Result<T>>,
    {
        let category = self.provider.category(call);
        retry::with_retry(&self.options.retry, &self.limiter, category, f, |attempt, e, delay| {
            self.emit(Event::Retrying {
                id: id.to_owned(),
                call: e.call.clone(),
                attempt,
                delay,
                error: format!("{}: {}", e.code, e.message),
            });
        })
        .await
    }
}

fn provider_error(id: &str, e: &provider::Error) -> Error {
    Error::Provider {
        resource: id.to_owned(),
        call: e.call.clone(),
        message: format!("{}: {}", e.code, e.message),
    }
}

/// Runs the plan's steps; returns the counts by action and the first failure.
///
/// A step is spawned as soon as the steps it waits for are done, and then waits for one of
/// `parallelism` permits: a finishing step hands its permit straight to the next one, so the
/// slots stay busy without a round trip through this loop. After a failure or an interrupt no
/// permit holder starts its step (the failing step raises `stop` before it releases its
/// permit); the steps in flight finish.
async fn run_steps(shared: &Arc<Shared>, plan: &Plan) -> (BTreeMap<String, u64>, Option<Error>) {
    let steps = &plan.steps;
    let changes: HashMap<&str, &Change> = plan.changes.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut waiting: Vec<usize> = steps.iter().map(|s| s.after.len()).collect();
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    for (i, s) in steps.iter().enumerate() {
        for &a in &s.after {
            next[a].push(i);
        }
    }
    let mut ready: VecDeque<usize> = (0..steps.len()).filter(|&i| waiting[i] == 0).collect();
    // `None`: the step did not start (the run was stopping).
    let mut running: JoinSet<(usize, Option<Result<()>>)> = JoinSet::new();
    let mut summary: BTreeMap<String, u64> = BTreeMap::new();
    let mut failure: Option<Error> = None;
    let mut interrupt = shared.options.interrupt.clone();
    let permits = Arc::new(Semaphore::new(shared.options.parallelism.max(1)));
    let stop = Arc::new(AtomicBool::new(false));
    loop {
        if interrupt.as_ref().is_some_and(|rx| *rx.borrow()) && failure.is_none() {
            failure = Some(Error::Interrupted);
            stop.store(true, Ordering::SeqCst);
        }
        while failure.is_none() {
            let Some(i) = ready.pop_front() else { break };
            let work = Work::new(shared, &steps[i], changes.get(steps[i].id.as_str()).copied());
            let (shared, permits, stop) = (shared.clone(), permits.clone(), stop.clone());
            running.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else { return (i, None) };
                if stop.load(Ordering::SeqCst) || shared.interrupted() {
                    return (i, None);
                }
                let r = run_step(&shared, work).await;
                if r.is_err() {
                    stop.store(true, Ordering::SeqCst);
                }
                (i, Some(r))
            });
        }
        if running.is_empty() {
            break;
        }
        let joined = match interrupt.as_mut() {
            Some(rx) if failure.is_none() => {
                tokio::select! {
                    j = running.join_next() => j,
                    _ = rx.changed() => continue,
                }
            }
            _ => running.join_next().await,
        };
        match joined {
            Some(Ok((i, Some(Ok(()))))) => {
                let name = step_name(steps[i].action);
                *summary.entry(name.to_owned()).or_default() += 1;
                for &j in &next[i] {
                    waiting[j] -= 1;
                    if waiting[j] == 0 {
                        ready.push_back(j);
                    }
                }
            }
            Some(Ok((_, Some(Err(e))))) => {
                if failure.is_none() || matches!(failure, Some(Error::Interrupted)) {
                    failure = Some(e);
                }
            }
            Some(Ok((_, None))) => {}
            Some(Err(join)) => {
                stop.store(true, Ordering::SeqCst);
                if failure.is_none() {
                    failure = Some(Error::Plan(format!("a step panicked: {join}")));
                }
            }
            None => break,
        }
    }
    (summary, failure)
}

fn step_name(a: StepAction) -> &'static str {
    match a {
        StepAction::Create => "create",
        StepAction::Update => "update",
        StepAction::Roll => "roll",
        StepAction::Delete => "delete",
        StepAction::DeleteDeposed => "delete_old",
    }
}

async fn run_step(shared: &Shared, mut work: Work) -> Result<()> {
    let (id, action) = (work.id.clone(), work.action);
    let started = Instant::now();
    shared.emit(Event::Started { id: id.clone(), action });
    let result = match action {
        StepAction::Create => create(shared, &id, &mut work).await,
        StepAction::Update => update(shared, &id, &mut work, false).await,
        StepAction::Roll => update(shared, &id, &mut work, true).await,
        StepAction::Delete => delete(shared, &id, &work, false).await,
        StepAction::DeleteDeposed => delete(shared, &id, &work, true).await,
    };
    match &result {
        Ok(()) => shared.emit(Event::Finished { id, action, elapsed: started.elapsed() }),
        Err(e) => shared.emit(Event::Failed { id, action, error: e.to_string() }),
    }
    result
}

fn missing(id: &str) -> Error {
    Error::Plan(format!("internal: the plan has a step for `{id}` but no change"))
}

async fn create(shared: &Shared, id: &str, work: &mut Work) -> Result<()> {
    let (change, resolved) = work.take()?;
    let token = shared
        .snapshot(|s| s.retry_tokens.get(id).cloned())
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    shared
        .record(Entry::Intent(Intent {
            id: id.to_owned(),
            kind: change.kind.clone(),
            token: token.clone(),
            started_at: now(),
            release: shared.release,
            inputs: resolved.state.clone(),
            dependencies: change.dependencies.clone(),
        }))
        .await?;
    let stack = shared.stack.clone();
    let mut tag_map = BTreeMap::new();
    tag_map.insert(tags::STACK.to_owned(), stack);
    tag_map.insert(tags::ID.to_owned(), id.to_owned());
    tag_map.insert(tags::RELEASE.to_owned(), shared.release.to_string());
    let request = Create {
        id,
        kind: &change.kind,
        inputs: resolved.provider(),
        token: &token,
        tags: &tag_map,
    };
    let observed = match shared.call_raw(id, "create", || shared.provider.create(&request)).await {
        Ok(o) => o,
        Err(e) => {
            // A terminal refusal created nothing: forget the intent. After retryable failures
            // the object may exist: the intent stays, and the next run looks it up.
            if e.kind == provider::ErrorKind::Terminal {
                shared.record(Entry::Settle { id: id.to_owned() }).await?;
            }
            return Err(provider_error(id, &e));
        }
    };
    let previous = shared.snapshot(|s| s.resources.get(id).cloned());
    let mut deposed = previous.as_ref().map(|p| p.deposed.clone()).unwrap_or_default();
    if change.action == Action::Replace && !change.destroy_before_create {
        if let Some(p) = previous.as_ref().filter(|p| p.physical_id != observed.physical_id) {
            deposed.push(Deposed {
                physical_id: p.physical_id.clone(),
                inputs: p.inputs.clone(),
                outputs: p.outputs.clone(),
                token: p.token.clone(),
            });
        }
    }
    let at = now();
    let r = ResourceState {
        id: id.to_owned(),
        kind: change.kind.clone(),
        physical_id: observed.physical_id,
        inputs: resolved.state.clone(),
        outputs: observed.outputs,
        dependencies: change.dependencies.clone(),
        protect: change.protect,
        destroy_before_create: change.destroy_before_create,
        token,
        created_at: at.clone(),
        updated_at: at,
        release: shared.release,
        deposed,
    };
    let group = (change.kind == GROUP_KIND).then(|| r.physical_id.clone());
    shared.record(Entry::Put(r)).await?;
    shared.record(Entry::Settle { id: id.to_owned() }).await?;
    match group {
        Some(group) => fleet::wait_for_capacity(shared, id, &group, resolved.provider()).await,
        None => Ok(()),
    }
}

/// The kind whose creates wait for their instances to be healthy.
const GROUP_KIND: &str = "aws:autoscaling:AutoScalingGroup";

async fn update(shared: &Shared, id: &str, work: &mut Work, roll: bool) -> Result<()> {
    let (change, resolved) = work.take()?;
    let current = shared.snapshot(|s| s.resources.get(id).cloned()).ok_or_else(|| {
        Error::Plan(format!(
            "`{id}` is to be updated but the state does not record it; make the plan again"
        ))
    })?;
    let changed: Vec<String> = resolved
        .state
        .iter()
        .filter(|(k, v)| current.inputs.get(k.as_str()) != Some(v))
        .map(|(k, _)| k.clone())
        .collect();
    let observed = shared
        .call(id, "update", || {
            shared.provider.update(
                &change.kind,
                &current.physical_id,
                resolved.provider(),
                &changed,
            )
        })
        .await?;
    if roll {
        fleet::roll(shared, id, &current, resolved.provider()).await?;
    }
    let mut outputs: Map<String, Json> = current.outputs.clone();
    outputs.extend(observed.outputs);
    let r = ResourceState {
        inputs: resolved.state,
        outputs,
        dependencies: change.dependencies.clone(),
        protect: change.protect,
        destroy_before_create: change.destroy_before_create,
        updated_at: now(),
        release: shared.release,
        ..current
    };
    shared.record(Entry::Put(r)).await
}

async fn delete(shared: &Shared, id: &str, work: &Work, deposed: bool) -> Result<()> {
    let current = shared.snapshot(|s| s.resources.get(id).cloned());
    let kind = current
        .as_ref()
        .map(|c| c.kind.clone())
        .or_else(|| work.change.as_ref().map(|c| c.kind.clone()))
        .ok_or_else(|| missing(id))?;
    let physical = work
        .physical_id
        .as_deref()
        .map(ToOwned::to_owned)
        .or_else(|| current.as_ref().map(|c| c.physical_id.clone()))
        .ok_or_else(|| missing(id))?;
    shared.call(id, "delete", || shared.provider.delete(&kind, &physical)).await?;
    // The deletes of one resource (its current object, old ones) run at once: each reads the
    // resource, changes it and records it under `writes`, so that none undoes another's record
    // (an old object recorded again after it was deleted, a resource recorded again after it
    // was removed).
    let _writing = shared.writes.lock().await;
    let entry = shared.snapshot(|s| {
        let c = s.resources.get(id)?;
        if !deposed && c.physical_id == physical {
            Some(Entry::Remove { id: id.to_owned() })
        } else if c.deposed.iter().any(|d| d.physical_id == physical) {
            let mut c = c.clone();
            c.deposed.retain(|d| d.physical_id != physical);
            Some(Entry::Put(c))
        } else {
            None
        }
    });
    match entry {
        Some(entry) => shared.record(entry).await,
        None => Ok(()),
    }
}
