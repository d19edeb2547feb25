//! The power governor, being built (its `[power]` section is still validated only): so far
//! the automatic profile choice ([`profile`]), from the power supplies, battery and thermal
//! headroom the device reports ([`crate::device`]), and what a profile asks of cpufreq as the
//! exact sysfs writes ([`cpufreq`]). Running it (a loop, the privilege to write cpufreq, the
//! local model's threads, background intervals) comes next.

pub mod cpufreq;
pub mod profile;
