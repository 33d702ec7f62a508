//! A shard's timers: deadlines kept in a heap, woken by one timerfd.
//!
//! Shards run monoio without its timer driver. That driver wraps every park
//! of the runtime: before each wait it looks for the wheel's next expiry
//! and reads the clock to turn it into a wait timeout, and after each wait
//! it reads the clock again and advances the wheel. A proxied request parks
//! a shard twice (for the request, then for the response), and under
//! callgrind that came to about 900 of its 11,200 instructions although no
//! timer ever fired. (On io_uring a park with a timeout also submits a
//! timeout entry.) Switchyard's timers are few and rarely fire: a
//! connection keeps one entry and moves it lazily (see
//! `proxy::deadline`), and the others guard rare waits (connect, a pending
//! name, the drain). So a park waits on IO alone, and time reaches the
//! shard as IO: a timerfd, armed at the earliest deadline, becomes readable
//! and wakes a task that fires what is due and arms the next. (nginx also
//! keeps its timers to itself, in a red-black tree whose earliest entry
//! bounds its `epoll_wait`.)
//!
//! Arming costs a `timerfd_settime` call, paid only when a deadline earlier
//! than the armed one appears (a new connection on a quiet shard, a short
//! wait); entries for later deadlines join the heap without a call. A
//! dropped or moved entry leaves its old heap record behind, which is
//! skipped when it surfaces; the heap is compacted when such records
//! outnumber live ones, so it holds at most twice the live entries plus 64.
//!
//! Everything is per thread: the table lives in a thread local, and its
//! driver runs inside [`with_timers`], which a shard's runtime runs its
//! main future under. Timers work on both monoio drivers (the timerfd is
//! waited on with a readiness poll: `POLL_ADD` on io_uring, epoll on the
//! legacy driver).

use monoio::time::Instant;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::future::Future;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// One registered deadline.
struct Slot {
    /// Bumped whenever the slot's deadline moves or the slot is freed, so
    /// heap records of an older deadline are recognised as stale.
    generation: u32,
    live: bool,
    fired: bool,
    waker: Option<Waker>,
}

/// Entries a thread's table has room for from the start.
const RESERVED: usize = 64;

/// A heap record: deadline, slot, generation. Smallest deadline on top.
type Record = Reverse<(Instant, u32, u32)>;

#[derive(Default)]
struct Table {
    heap: BinaryHeap<Record>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    /// The timerfd, while a driver task runs on this thread.
    fd: Option<File>,
    /// When the timerfd fires; `None` while it is disarmed.
    armed: Option<Instant>,
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table::default());
}

impl Table {
    fn is_current(&self, slot: u32, generation: u32) -> bool {
        self.slots
            .get(slot as usize)
            .is_some_and(|s| s.live && s.generation == generation)
    }

    /// A new slot due at `at`; starts the driver on first use.
    fn insert(&mut self, at: Instant) -> io::Result<u32> {
        if self.fd.is_none() {
            return Err(io::Error::other(
                "no timer driver on this thread (see timer::with_timers)",
            ));
        }
        let slot = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    live: false,
                    fired: false,
                    waker: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[slot as usize];
        s.live = true;
        s.fired = false;
        let generation = s.generation;
        self.live += 1;
        if let Err(e) = self.schedule(at, slot, generation) {
            self.remove(slot);
            return Err(e);
        }
        Ok(slot)
    }

    /// Moves a live slot to `at`; its older records go stale.
    fn move_to(&mut self, slot: u32, at: Instant) -> io::Result<()> {
        let s = &mut self.slots[slot as usize];
        s.generation = s.generation.wrapping_add(1);
        s.fired = false;
        let generation = s.generation;
        self.schedule(at, slot, generation)
    }

    /// Frees a slot, handing back its waker for the caller to drop once
    /// the table is released.
    fn remove(&mut self, slot: u32) -> Option<Waker> {
        let s = &mut self.slots[slot as usize];
        s.generation = s.generation.wrapping_add(1);
        s.live = false;
        self.free.push(slot);
        self.live -= 1;
        s.waker.take()
    }

    fn schedule(&mut self, at: Instant, slot: u32, generation: u32) -> io::Result<()> {
        self.heap.push(Reverse((at, slot, generation)));
        if self.heap.len() > 2 * self.live + 64 {
            let slots = &self.slots;
            self.heap.retain(|Reverse((_, i, g))| {
                slots
                    .get(*i as usize)
                    .is_some_and(|s| s.live && s.generation == *g)
            });
        }
        if self.armed.is_none_or(|armed| at < armed) {
            self.arm(at)?;
        }
        Ok(())
    }

    /// Sets the timerfd to fire at `at` (at once if that has passed).
    fn arm(&mut self, at: Instant) -> io::Result<()> {
        let Some(fd) = &self.fd else {
            return Err(io::Error::other("timer driver not running"));
        };
        // A zero value would disarm the timer; a due deadline fires in a
        // nanosecond instead.
        let wait = at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        settime(fd, wait)?;
        self.armed = Some(at);
        Ok(())
    }

    /// Fires every slot due by `now`, collecting wakers into `woken`, then
    /// arms the timerfd for the earliest live deadline left.
    fn fire(&mut self, now: Instant, woken: &mut Vec<Waker>) -> io::Result<()> {
        self.armed = None;
        while let Some(&Reverse((at, slot, generation))) = self.heap.peek() {
            if !self.is_current(slot, generation) {
                self.heap.pop();
                continue;
            }
            if at > now {
                return self.arm(at);
            }
            self.heap.pop();
            let s = &mut self.slots[slot as usize];
            s.fired = true;
            woken.extend(s.waker.take());
        }
        Ok(())
    }

    /// Stops timing: every registered entry ends as if due, and later
    /// ones fail to register (so end at once). Returns the entries' wakers,
    /// for the caller to wake or drop once the table is released.
    fn stop(&mut self) -> Vec<Waker> {
        self.fd = None;
        self.armed = None;
        self.heap.clear();
        self.slots
            .iter_mut()
            .filter(|s| s.live)
            .filter_map(|s| {
                s.fired = true;
                s.waker.take()
            })
            .collect()
    }

    /// Creates the timerfd; returns the handle the driver waits on, or
    /// `None` when a driver already runs on this thread.
    fn start(&mut self) -> io::Result<Option<File>> {
        if self.fd.is_some() {
            return Ok(None);
        }
        let fd = timerfd()?;
        let wait_on = fd.try_clone()?;
        self.fd = Some(fd);
        self.armed = None;
        // Sized once here, so that a shard in steady state allocates
        // nothing for its timers (tests/alloc.rs holds the request path to
        // no allocation at all); they grow only past these.
        self.heap.reserve(RESERVED);
        self.slots.reserve(RESERVED);
        self.free.reserve(RESERVED);
        Ok(Some(wait_on))
    }
}

/// Runs `fut` with this thread's timers driven: sleeps and timeouts
/// inside it (and in tasks it spawns) fire while it runs. The driver is
/// polled as part of `fut`'s task, so it lives exactly as long as the
/// call; monoio does not drop a runtime's other tasks when the runtime
/// ends, and a driver spawned as one would outlive it. A nested call
/// runs `fut` under the outer driver.
pub async fn with_timers<F: Future>(fut: F) -> F::Output {
    let wait_on = match TABLE.with(|t| t.borrow_mut().start()) {
        Ok(Some(fd)) => fd,
        Ok(None) => return fut.await,
        Err(e) => {
            tracing::error!(error = %e, "timer: cannot create a timerfd; timeouts will end at once");
            return fut.await;
        }
    };
    let _running = Running;
    let mut fut = std::pin::pin!(fut);
    let mut driver = std::pin::pin!(drive(wait_on));
    let mut driver_done = false;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(v);
        }
        // The driver ends only on an error it has logged; every wait under
        // a timer then ends at once, now and later (see `Sleep`), so
        // nothing waits unbounded.
        if !driver_done && driver.as_mut().poll(cx).is_ready() {
            driver_done = true;
            for w in TABLE.with(|t| t.borrow_mut().stop()) {
                w.wake();
            }
        }
        Poll::Pending
    })
    .await
}

/// Clears the thread's driver state when [`with_timers`] returns or is
/// dropped, so a later runtime on the thread can start its own.
struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        // Entries still registered belong to tasks of the runtime that is
        // ending (monoio leaves them undropped): they end as if due, and
        // their wakers are let go rather than ever woken on a later runtime.
        let wakers =
            TABLE.try_with(|t| t.try_borrow_mut().map(|mut t| t.stop()).unwrap_or_default());
        drop(wakers);
    }
}

/// The driver task: waits for the timerfd, fires what is due, repeats.
async fn drive(fd: File) {
    // monoio waits for readiness only on its socket types; the timerfd is
    // carried in one for `readable`, and no socket call is made on it.
    let waiter = match monoio::net::UnixStream::from_std(std::os::unix::net::UnixStream::from(
        OwnedFd::from(fd),
    )) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "timer: cannot register the timerfd; timers will not fire");
            return;
        }
    };
    // Allocated before the first expiry rather than at it.
    let mut woken = Vec::with_capacity(RESERVED);
    loop {
        if let Err(e) = waiter.readable(false).await {
            tracing::error!(error = %e, "timer: waiting on the timerfd failed; timers will not fire");
            return;
        }
        // Reading resets the expiry count; the count itself is not needed
        // because deadlines are compared with the clock.
        let mut count = [0u8; 8];
        let consumed = TABLE.with(|t| match &t.borrow().fd {
            Some(f) => (&*f).read(&mut count).map(|_| ()),
            None => Ok(()),
        });
        match consumed {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::error!(error = %e, "timer: reading the timerfd failed");
                return;
            }
        }
        let fired = TABLE.with(|t| t.borrow_mut().fire(Instant::now(), &mut woken));
        // Wakers run with the table released: a woken task may be polled
        // at once and register or drop its entry.
        for w in woken.drain(..) {
            w.wake();
        }
        if let Err(e) = fired {
            tracing::error!(error = %e, "timer: re-arming the timerfd failed");
            return;
        }
    }
}

#[allow(unsafe_code)]
fn timerfd() -> io::Result<File> {
    // SAFETY: timerfd_create takes no pointers; a non-negative return is a
    // new descriptor that nothing else owns, so File may take it.
    let fd = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: see above; the descriptor is open and owned by no one else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

#[allow(unsafe_code)]
fn settime(fd: &File, after: Duration) -> io::Result<()> {
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: after.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: after.subsec_nanos() as libc::c_long,
        },
    };
    // SAFETY: `fd` is an open timerfd borrowed for the call; `spec` is a
    // valid itimerspec that outlives it; a null old-value pointer is allowed.
    let r = unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A future that is ready once its deadline has passed. It joins the
/// shard's timers on first poll (or reset), and leaves them when dropped.
/// Must be polled inside [`with_timers`]; elsewhere it logs an error and
/// ends at once, so a bounded wait is cut short rather than made endless.
pub struct Sleep {
    at: Instant,
    /// The slot, once registered.
    entry: Option<u32>,
    /// Set when registration failed (no timerfd): the sleep then ends at
    /// once, so a wait is cut short rather than left without a bound.
    failed: bool,
}

/// Ready at `at`.
pub fn sleep_until(at: Instant) -> Sleep {
    Sleep {
        at,
        entry: None,
        failed: false,
    }
}

/// Ready after `dur`.
pub fn sleep(dur: Duration) -> Sleep {
    sleep_until(after(dur))
}

/// As good as never: far enough away that a deadline there does not fire,
/// near enough that adding it to the clock cannot overflow.
pub const FAR: Duration = Duration::from_secs(86_400 * 365);

/// `dur` from now (saturating at [`FAR`] instead of overflowing).
pub fn after(dur: Duration) -> Instant {
    after_from(Instant::now(), dur)
}

/// `dur` from `now`, a clock reading the caller already has.
pub fn after_from(now: Instant, dur: Duration) -> Instant {
    now.checked_add(dur).unwrap_or_else(|| now + FAR)
}

impl Sleep {
    /// The deadline.
    pub fn deadline(&self) -> Instant {
        self.at
    }

    /// Moves the deadline; the sleep is pending again until it passes.
    pub fn reset(&mut self, at: Instant) {
        self.at = at;
        if let Some(slot) = self.entry
            && let Err(e) = TABLE.with(|t| t.borrow_mut().move_to(slot, at))
        {
            self.give_up(e);
        }
    }

    fn give_up(&mut self, e: io::Error) {
        tracing::error!(error = %e, "timer: cannot arm a deadline; ending the wait");
        self.failed = true;
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(());
        }
        let slot = match this.entry {
            Some(slot) => slot,
            None => match TABLE.with(|t| t.borrow_mut().insert(this.at)) {
                Ok(slot) => {
                    this.entry = Some(slot);
                    slot
                }
                Err(e) => {
                    this.give_up(e);
                    return Poll::Ready(());
                }
            },
        };
        let (ready, replaced) = TABLE.with(|t| {
            let mut t = t.borrow_mut();
            let s = &mut t.slots[slot as usize];
            if s.fired {
                return (true, None);
            }
            if s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                return (false, None);
            }
            (false, s.waker.replace(cx.waker().clone()))
        });
        // A replaced waker is dropped with the table released: it may hold
        // the last reference to a task whose drop reaches this table.
        drop(replaced);
        if ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(slot) = self.entry {
            let waker = TABLE
                .try_with(|t| t.try_borrow_mut().ok().and_then(|mut t| t.remove(slot)))
                .ok()
                .flatten();
            drop(waker);
        }
    }
}

/// The deadline of [`timeout`] passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// Runs `fut` for at most `dur`; dropping it on expiry cancels its work.
pub async fn timeout<F: Future>(dur: Duration, fut: F) -> Result<F::Output, Elapsed> {
    let mut fut = std::pin::pin!(fut);
    let mut sleep = sleep(dur);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    const MS: Duration = Duration::from_millis(1);

    /// Runs `f` on each driver this machine can build, without monoio's
    /// timer. io_uring is skipped only where a ring cannot be built, and
    /// says so.
    fn on_each_driver<F: Future<Output = ()>>(f: impl Fn() -> F) {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .expect("epoll runtime")
            .block_on(with_timers(f()));
        match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().build() {
            Ok(mut rt) => rt.block_on(with_timers(f())),
            Err(e) => eprintln!("io_uring unavailable here ({e}); ran on epoll only"),
        }
    }

    fn heap_len() -> usize {
        TABLE.with(|t| t.borrow().heap.len())
    }

    #[test]
    fn sleeps_end_in_deadline_order_and_never_early() {
        on_each_driver(|| async {
            let order = Rc::new(RefCell::new(Vec::new()));
            let start = Instant::now();
            let mut tasks = Vec::new();
            for (i, ms) in [40u64, 10, 30, 20, 10].into_iter().enumerate() {
                let order = order.clone();
                tasks.push(monoio::spawn(async move {
                    let at = start + Duration::from_millis(ms);
                    sleep_until(at).await;
                    assert!(Instant::now() >= at, "sleep {i} ended early");
                    order.borrow_mut().push(ms);
                }));
            }
            for t in tasks {
                t.await;
            }
            assert_eq!(*order.borrow(), vec![10, 10, 20, 30, 40]);
        });
    }

    #[test]
    fn a_moved_deadline_counts_from_its_new_place() {
        on_each_driver(|| async {
            // Later: armed for 10 ms, moved to 40 ms before it fires.
            let start = Instant::now();
            let mut s = sleep_until(start + 10 * MS);
            assert!(futures_poll_once(&mut s).is_pending());
            s.reset(start + 40 * MS);
            (&mut s).await;
            assert!(Instant::now() >= start + 40 * MS);
            // Earlier: a year away, moved to 5 ms; the timerfd is re-armed.
            let start = Instant::now();
            let mut s = sleep(FAR);
            assert!(futures_poll_once(&mut s).is_pending());
            s.reset(start + 5 * MS);
            (&mut s).await;
            assert!(Instant::now() >= start + 5 * MS);
            // After firing, a reset makes it pending again.
            s.reset(Instant::now() + 5 * MS);
            assert!(futures_poll_once(&mut s).is_pending());
            (&mut s).await;
        });
    }

    #[test]
    fn timeout_ends_the_slower_of_the_two() {
        on_each_driver(|| async {
            assert_eq!(timeout(5 * MS, sleep(200 * MS)).await, Err(Elapsed));
            assert_eq!(timeout(200 * MS, async { 7 }).await, Ok(7));
            assert_eq!(
                timeout(200 * MS, async {
                    sleep(5 * MS).await;
                    8
                })
                .await,
                Ok(8)
            );
        });
    }

    #[test]
    fn dropped_sleeps_neither_fire_nor_pile_up() {
        on_each_driver(|| async {
            let fired = Rc::new(Cell::new(0));
            // A task whose sleep is dropped before its deadline never runs on.
            {
                let fired = fired.clone();
                let t = monoio::spawn(timeout(5 * MS, async move {
                    sleep(20 * MS).await;
                    fired.set(fired.get() + 1);
                }));
                assert_eq!(t.await, Err(Elapsed));
            }
            sleep(30 * MS).await;
            assert_eq!(fired.get(), 0);
            // Many far deadlines, each registered then dropped (a connection
            // that comes and goes): stale records are compacted away.
            let live = sleep(Duration::from_secs(3600));
            let mut live = std::pin::pin!(live);
            assert!(futures_poll_once(&mut live).is_pending());
            for i in 0..10_000u64 {
                let mut s = sleep(Duration::from_secs(60 + i));
                assert!(futures_poll_once(&mut s).is_pending());
            }
            assert!(heap_len() <= 2 + 64, "heap kept {} records", heap_len());
        });
    }

    #[test]
    fn a_later_runtime_on_the_same_thread_gets_a_driver_of_its_own() {
        // Each runtime leaves a task asleep when it ends; none may run on
        // a later runtime, and each runtime's own sleeps must fire.
        let stray = Rc::new(Cell::new(0));
        for _ in 0..3 {
            let stray = stray.clone();
            monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .build()
                .expect("runtime")
                .block_on(with_timers(async move {
                    monoio::spawn(async move {
                        sleep(20 * MS).await;
                        stray.set(stray.get() + 1);
                    });
                    let start = Instant::now();
                    sleep(5 * MS).await;
                    assert!(Instant::now() >= start + 5 * MS);
                }));
        }
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .expect("runtime")
            .block_on(with_timers(sleep(60 * MS)));
        assert_eq!(stray.get(), 0, "a task of an ended runtime ran on");
    }

    #[test]
    fn a_sleep_without_a_driver_ends_at_once_instead_of_never() {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .expect("runtime")
            .block_on(async {
                let start = Instant::now();
                sleep(Duration::from_secs(7200)).await;
                assert!(start.elapsed() < Duration::from_secs(60));
            });
    }

    #[test]
    fn when_timing_stops_every_wait_ends_now_and_later() {
        on_each_driver(|| async {
            // What the driver does when it fails: registered waits end as
            // if due, and new ones end at once, rather than never.
            let waiting = monoio::spawn(sleep(Duration::from_secs(3600)));
            sleep(MS).await;
            for w in TABLE.with(|t| t.borrow_mut().stop()) {
                w.wake();
            }
            let start = Instant::now();
            waiting.await;
            sleep(Duration::from_secs(3600)).await;
            assert!(start.elapsed() < Duration::from_secs(60));
        });
    }

    /// Polls a future once with a waker that does nothing.
    fn futures_poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(f).poll(&mut cx)
    }
}
