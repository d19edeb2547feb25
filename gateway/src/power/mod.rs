//! The power governor, being built (its `[power]` section is still validated only): so far
//! the automatic profile choice ([`profile`]), from the power supplies, battery and thermal
//! headroom the device reports ([`crate::device`]). Applying a profile (cpufreq, the local
//! model's threads, background intervals) comes next.

pub mod profile;
