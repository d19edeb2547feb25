//! The power governor: the automatic profile choice ([`profile`]) from the power supplies,
//! battery and thermal headroom the device reports ([`crate::device`]); what a profile asks of
//! cpufreq as the exact sysfs writes, made directly or by a root helper ([`cpufreq`]); and the
//! loop that decides, logs each switch with its reason, and applies it ([`governor`]).

pub mod cpufreq;
pub mod governor;
pub mod profile;

pub use governor::{Governor, Pace, PowerStatus};
pub use profile::Profile;
