//! Crash consistency: the apply of a ~50-resource stack, run as a child process, killed with
//! SIGKILL at random moments; each kill is followed by another apply. After a final apply the
//! local cloud holds exactly the stack's resources and the state records them.

use std::fs::File;
use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use graven::local::{Faults, Settings};

use crate::apply_support::{Program, Project, check_converged, crash_graph};

/// Kills to make.
const KILLS: u32 = 30;

#[test]
fn sigkill_at_random_moments_loses_nothing_and_duplicates_nothing() {
    let project = Project::new(Program::Crash);
    // Slow calls so that an apply lasts about a second, and quick boots so that rolls do too.
    project.set_settings(
        Settings::default()
            .boot_time(Duration::from_millis(100))
            .health_delay(Duration::from_millis(100))
            .faults(Faults::default().latency(Duration::from_millis(40))),
    );
    let seed = std::env::var("GRAVEN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!(
        "crash test: seed {seed} (rerun with GRAVEN_CRASH_SEED={seed}), project {}",
        project.root().display()
    );
    let mut rng = fastrand::Rng::with_seed(seed);
    let log = project.root().join("child.log");
    let started = Instant::now();
    let (mut kills, mut completed, mut attempt) = (0u32, 0u32, 0u32);
    // The kill comes at a random time below `window`, which shrinks when applies end before
    // it (a fast machine) and grows when they do not, so most attempts are cut short anywhere
    // in the apply whatever the machine's speed.
    let mut window = 1_200.0_f64;
    // Each round changes the stack (replacements, updates, rolls, creates and deletes) and gets
    // three attempts, so kills land in fresh applies and in applies that resume killed ones.
    while kills < KILLS {
        assert!(
            attempt < 4 * KILLS,
            "only {kills} kills in {attempt} attempts (seed {seed}): the applies end too fast"
        );
        let round = (attempt / 3).to_string();
        let mut stderr = File::options().create(true).append(true).open(&log).expect("the log");
        writeln!(stderr, "\n== attempt {attempt}, round {round}").expect("the log");
        let mut child = project
            .command(&["apply", "--auto-approve", "--var", &format!("round={round}")])
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("the stack program starts");
        std::thread::sleep(Duration::from_secs_f64(rng.f64() * window / 1e3));
        if let Some(status) = child.try_wait().expect("the child's status") {
            let stderr = std::fs::read_to_string(&log).unwrap_or_default();
            let stderr = &stderr[stderr.rfind("\n== attempt").unwrap_or(0)..];
            assert!(
                status.success(),
                "apply of round {round} failed (seed {seed}, after {kills} kills):\n{stderr}"
            );
            completed += 1;
            window = (window * 0.85).max(100.0);
        } else {
            child.kill().expect("SIGKILL"); // `Child::kill` sends SIGKILL on unix
            child.wait().expect("the child is reaped"); // so its pid no longer looks alive
            kills += 1;
            window = (window * 1.05).min(3_000.0);
        }
        attempt += 1;
    }
    let round = (attempt / 3).to_string();
    let vars = format!("round={round}");
    project.run(&["apply", "--auto-approve", "--var", &vars]).expect_code(0);
    let converged = check_converged(project.root(), &crash_graph(round.parse().expect("a round")));
    project.run(&["plan", "--detailed-exitcode", "--var", &vars]).expect_code(0);
    // How many creates whose outcome a killed run never learned the next runs found by their
    // idempotency token and adopted (a run prints them once all are looked up, so a run killed
    // while looking them up does not count them: this is a lower bound, for the log).
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    let adopted = logs.lines().filter(|l| l.starts_with("adopted `")).count();
    eprintln!(
        "crash test (seed {seed}): {kills} kills, {completed} applies completed, {attempt} attempts, {adopted} creates adopted, in {:.1}s; final round {round}: {:?} and {} fleet instances",
        started.elapsed().as_secs_f64(),
        converged.objects,
        converged.fleet_instances
    );
}
