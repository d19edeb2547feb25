//! The seccomp allow-list: systemd's `@system-service` set without `@privileged` and
//! `@resources`, which is what `systemd/mcp-gateway.service` allows (`systemd-analyze
//! syscall-filter`, systemd 252), so the gateway enforces the same limits where no unit does.
//! Everything else fails with `EPERM`.

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

use super::{fail, SandboxError};

/// System calls of both supported architectures, grouped as systemd groups them.
const ALLOWED: &[i64] = &[
    // @default: System calls that are always permitted
    libc::SYS_brk,
    libc::SYS_clock_getres,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_execve,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_futex,
    libc::SYS_futex_waitv,
    libc::SYS_get_robust_list,
    libc::SYS_getegid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getgroups,
    libc::SYS_getpgid,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_getrandom,
    libc::SYS_getresgid,
    libc::SYS_getresuid,
    libc::SYS_getsid,
    libc::SYS_gettid,
    libc::SYS_gettimeofday,
    libc::SYS_getuid,
    libc::SYS_membarrier,
    libc::SYS_mmap,
    libc::SYS_mprotect,
    libc::SYS_munmap,
    libc::SYS_nanosleep,
    libc::SYS_prlimit64,
    libc::SYS_restart_syscall,
    libc::SYS_rseq,
    libc::SYS_rt_sigreturn,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_yield,
    libc::SYS_set_robust_list,
    libc::SYS_set_tid_address,
    // @basic-io: Basic IO
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_lseek,
    libc::SYS_pread64,
    libc::SYS_preadv,
    libc::SYS_preadv2,
    libc::SYS_pwrite64,
    libc::SYS_pwritev,
    libc::SYS_pwritev2,
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_write,
    libc::SYS_writev,
    // @file-system: File system operations
    libc::SYS_chdir,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_fallocate,
    libc::SYS_fchdir,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_fcntl,
    libc::SYS_fgetxattr,
    libc::SYS_flistxattr,
    libc::SYS_fremovexattr,
    libc::SYS_fsetxattr,
    libc::SYS_fstat,
    libc::SYS_fstatfs,
    libc::SYS_ftruncate,
    libc::SYS_getcwd,
    libc::SYS_getdents64,
    libc::SYS_getxattr,
    libc::SYS_inotify_add_watch,
    libc::SYS_inotify_init1,
    libc::SYS_inotify_rm_watch,
    libc::SYS_lgetxattr,
    libc::SYS_linkat,
    libc::SYS_listxattr,
    libc::SYS_llistxattr,
    libc::SYS_lremovexattr,
    libc::SYS_lsetxattr,
    libc::SYS_mkdirat,
    libc::SYS_mknodat,
    libc::SYS_newfstatat,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_readlinkat,
    libc::SYS_removexattr,
    libc::SYS_renameat2,
    libc::SYS_setxattr,
    libc::SYS_statfs,
    libc::SYS_statx,
    libc::SYS_symlinkat,
    libc::SYS_truncate,
    libc::SYS_unlinkat,
    libc::SYS_utimensat,
    // @io-event: Event loop system calls
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_eventfd2,
    libc::SYS_ppoll,
    libc::SYS_pselect6,
    // @ipc: SysV IPC, POSIX Message Queues or other IPC
    libc::SYS_memfd_create,
    libc::SYS_mq_getsetattr,
    libc::SYS_mq_notify,
    libc::SYS_mq_open,
    libc::SYS_mq_timedreceive,
    libc::SYS_mq_timedsend,
    libc::SYS_mq_unlink,
    libc::SYS_msgctl,
    libc::SYS_msgget,
    libc::SYS_msgrcv,
    libc::SYS_msgsnd,
    libc::SYS_pipe2,
    libc::SYS_process_madvise,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_semctl,
    libc::SYS_semget,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_shmat,
    libc::SYS_shmctl,
    libc::SYS_shmdt,
    libc::SYS_shmget,
    // @keyring: Kernel keyring access
    libc::SYS_add_key,
    libc::SYS_keyctl,
    libc::SYS_request_key,
    // @memlock: Memory locking control
    libc::SYS_mlock,
    libc::SYS_mlock2,
    libc::SYS_mlockall,
    libc::SYS_munlock,
    libc::SYS_munlockall,
    // @network-io: Network or Unix socket IO, should not be needed if not network facing
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_bind,
    libc::SYS_connect,
    libc::SYS_getpeername,
    libc::SYS_getsockname,
    libc::SYS_getsockopt,
    libc::SYS_listen,
    libc::SYS_recvfrom,
    libc::SYS_recvmmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendmmsg,
    libc::SYS_sendmsg,
    libc::SYS_sendto,
    libc::SYS_setsockopt,
    libc::SYS_shutdown,
    libc::SYS_socket,
    libc::SYS_socketpair,
    // @process: Process control, execution, namespacing operations
    libc::SYS_capget,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_execveat,
    libc::SYS_getrusage,
    libc::SYS_kill,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    libc::SYS_prctl,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_tgsigqueueinfo,
    libc::SYS_setns,
    libc::SYS_tgkill,
    libc::SYS_times,
    libc::SYS_tkill,
    libc::SYS_unshare,
    libc::SYS_wait4,
    libc::SYS_waitid,
    // @signal: Process signal handling
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigpending,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigsuspend,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_sigaltstack,
    libc::SYS_signalfd4,
    // @sync: Synchronize files and memory to storage
    libc::SYS_fdatasync,
    libc::SYS_fsync,
    libc::SYS_msync,
    libc::SYS_sync,
    libc::SYS_syncfs,
    // @timer: Schedule operations by time
    libc::SYS_getitimer,
    libc::SYS_setitimer,
    libc::SYS_timer_create,
    libc::SYS_timer_delete,
    libc::SYS_timer_getoverrun,
    libc::SYS_timer_gettime,
    libc::SYS_timer_settime,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_gettime,
    libc::SYS_timerfd_settime,
    // @aio: Asynchronous IO
    libc::SYS_io_cancel,
    libc::SYS_io_destroy,
    libc::SYS_io_getevents,
    libc::SYS_io_setup,
    libc::SYS_io_submit,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_io_uring_setup,
    // @setuid: Operations for changing user/group credentials
    libc::SYS_setgid,
    libc::SYS_setregid,
    libc::SYS_setresgid,
    // @system-service: calls systemd lists directly in @system-service
    libc::SYS_copy_file_range,
    libc::SYS_fadvise64,
    libc::SYS_flock,
    libc::SYS_get_mempolicy,
    libc::SYS_getcpu,
    libc::SYS_getpriority,
    libc::SYS_ioctl,
    libc::SYS_ioprio_get,
    libc::SYS_kcmp,
    libc::SYS_madvise,
    libc::SYS_mremap,
    libc::SYS_name_to_handle_at,
    libc::SYS_personality,
    libc::SYS_readahead,
    libc::SYS_remap_file_pages,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_sched_getattr,
    libc::SYS_sched_getparam,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_rr_get_interval,
    libc::SYS_sendfile,
    libc::SYS_setfsgid,
    libc::SYS_setpgid,
    libc::SYS_setsid,
    libc::SYS_splice,
    libc::SYS_sysinfo,
    libc::SYS_tee,
    libc::SYS_umask,
    libc::SYS_uname,
    libc::SYS_userfaultfd,
    libc::SYS_vmsplice,
];

/// The older calls only x86_64 has (aarch64 has only their `*at` successors).
#[cfg(target_arch = "x86_64")]
const ALLOWED_X86_64: &[i64] = &[
    // @default: System calls that are always permitted
    libc::SYS_arch_prctl,
    libc::SYS_get_thread_area,
    libc::SYS_getpgrp,
    libc::SYS_getrlimit,
    libc::SYS_pause,
    libc::SYS_set_thread_area,
    libc::SYS_time,
    // @basic-io: Basic IO
    libc::SYS_dup2,
    // @file-system: File system operations
    libc::SYS_access,
    libc::SYS_chmod,
    libc::SYS_creat,
    libc::SYS_fchmodat2,
    libc::SYS_futimesat,
    libc::SYS_getdents,
    libc::SYS_inotify_init,
    libc::SYS_link,
    libc::SYS_lstat,
    libc::SYS_mkdir,
    libc::SYS_mknod,
    libc::SYS_open,
    libc::SYS_readlink,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_rmdir,
    libc::SYS_stat,
    libc::SYS_symlink,
    libc::SYS_unlink,
    libc::SYS_utime,
    libc::SYS_utimes,
    // @io-event: Event loop system calls
    libc::SYS_epoll_create,
    libc::SYS_epoll_ctl_old,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_wait_old,
    libc::SYS_eventfd,
    libc::SYS_poll,
    libc::SYS_select,
    // @ipc: SysV IPC, POSIX Message Queues or other IPC
    libc::SYS_pipe,
    // @process: Process control, execution, namespacing operations
    libc::SYS_fork,
    libc::SYS_vfork,
    // @signal: Process signal handling
    libc::SYS_signalfd,
    // @sync: Synchronize files and memory to storage
    libc::SYS_sync_file_range,
    // @timer: Schedule operations by time
    libc::SYS_alarm,
];
#[cfg(not(target_arch = "x86_64"))]
const ALLOWED_X86_64: &[i64] = &[];

/// Installs the filter on every thread of the process, then checks that `sched_setaffinity`
/// (in `@resources`, so outside the list) is refused.
pub fn install() -> Result<String, SandboxError> {
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = ALLOWED
        .iter()
        .chain(ALLOWED_X86_64)
        .map(|&call| (call, Vec::new()))
        .collect();
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| fail("seccomp")(&e))?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(|e| fail("seccomp")(&e))?;
    let program: BpfProgram = filter.try_into().map_err(|e| fail("seccomp")(&e))?;
    seccompiler::apply_filter_all_threads(&program).map_err(|e| fail("seccomp")(&e))?;

    let cpus = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map_err(|e| fail("sched_getaffinity")(&e))?;
    match nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus) {
        Err(nix::errno::Errno::EPERM) => Ok(format!(
            "allow-list of {} system calls (sched_setaffinity denied)",
            ALLOWED.len() + ALLOWED_X86_64.len()
        )),
        other => Err(SandboxError(format!(
            "the seccomp filter is installed, yet sched_setaffinity answered {other:?}"
        ))),
    }
}
