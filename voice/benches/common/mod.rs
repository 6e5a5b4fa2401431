//! What the voice benches share.

#![allow(dead_code)] // each bench uses part of it

/// CPU seconds (user + system) used by this process's threads whose name
/// starts with `prefix`, from /proc (Linux; 0 elsewhere).
pub fn threads_cpu_seconds(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ticks = 0.0;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state …`: utime and stime are the 12th and 13th
        // fields after the parenthesis.
        let Some((head, tail)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head
            .split_once('(')
            .is_some_and(|(_, comm)| comm.starts_with(prefix))
        {
            continue;
        }
        let fields: Vec<&str> = tail.split_whitespace().collect();
        let parse = |index: usize| {
            fields
                .get(index)
                .and_then(|field| field.parse::<f64>().ok())
        };
        ticks += parse(11).unwrap_or(0.0) + parse(12).unwrap_or(0.0);
    }
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}
