//! Time limits on a connection's IO, and waking idle connections when the
//! shard drains.
//!
//! Every read and write of a connection task runs under a deadline. Wrapping
//! each operation in `monoio::time::timeout` built a timer entry per
//! operation: a clock read, a wheel insert and remove, and a copy of the
//! operation into the wrapper, about 1,900 instructions of a proxied
//! request's 15,300 under callgrind (four operations each). A connection
//! task has one operation in flight at a time, so it needs one timer: a
//! [`Deadline`] owns a single entry in the shard's timers ([`crate::timer`])
//! for the life of the connection.
//! An operation whose deadline is later than the armed one leaves the entry
//! alone; if the entry fires first, the woken operation finds its own
//! deadline still ahead and re-arms for it. Only a deadline earlier than
//! the armed one moves the entry at once. Operations that follow one
//! another with the same limit always push the deadline later, so in steady
//! state an operation costs a comparison, and a busy connection pays one
//! early wake-up per limit's length (seconds). nginx's `ngx_add_timer`
//! saves work the same way: it leaves a timer in place when the new expiry
//! is close to the old (`NGX_TIMER_LAZY_DELAY`).
//!
//! An idle keep-alive read also ends when the shard drains. monoio's
//! cancelable reads hash every operation into and out of a set (SipHash,
//! about 400 instructions a request); instead each connection has a slot in
//! the shard's [`IdleWakers`] for the waker of its idle read, registered
//! once per connection, and a drain wakes them all.

use crate::timer::Sleep;
use monoio::time::Instant;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Poll, Waker};

/// Why an operation under a deadline did not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The deadline passed.
    TimedOut,
    /// The shard is draining (idle operations only).
    Drained,
}

/// A connection's single timer entry.
pub struct Deadline {
    sleep: Sleep,
    /// Where the entry is set; at or before every running deadline.
    armed: Instant,
}

impl Default for Deadline {
    fn default() -> Self {
        Deadline::new()
    }
}

impl Deadline {
    /// Must be used on a monoio runtime (see [`crate::timer`]). The entry
    /// joins the shard's timers on first use.
    pub fn new() -> Deadline {
        // Parked until an operation runs.
        let sleep = crate::timer::sleep(crate::timer::FAR);
        let armed = sleep.deadline();
        Deadline { sleep, armed }
    }

    fn arm(&mut self, at: Instant) {
        if at < self.armed {
            self.sleep.reset(at);
            self.armed = at;
        }
    }

    /// Polls the entry for an operation due at `at`: ready when `at` has
    /// passed; an entry that fired for an earlier deadline is re-armed.
    fn poll_expired(&mut self, at: Instant, cx: &mut std::task::Context<'_>) -> bool {
        loop {
            if Pin::new(&mut self.sleep).poll(cx).is_pending() {
                return false;
            }
            if at <= self.armed || at <= Instant::now() {
                return true;
            }
            self.sleep.reset(at);
            self.armed = at;
        }
    }

    /// Runs `fut` until it finishes or `at` passes; the caller drops `fut`
    /// on a timeout, which cancels its operation. `fut` is pinned where the
    /// caller made it: passing the operation itself would copy it into this
    /// future and again into its pinned place (two `memcpy` calls each).
    /// A plain function returning the poll loop, not an `async fn` around
    /// it: one state machine less to enter on every poll of every
    /// operation. The deadline is armed when this is called.
    pub fn run<'a, F: Future>(
        &'a mut self,
        at: Instant,
        mut fut: Pin<&'a mut F>,
    ) -> impl Future<Output = Result<F::Output, Stopped>> + 'a {
        self.arm(at);
        std::future::poll_fn(move |cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(v));
            }
            if self.poll_expired(at, cx) {
                return Poll::Ready(Err(Stopped::TimedOut));
            }
            Poll::Pending
        })
    }

    /// [`Deadline::run`] for a read that waits for a client's next request:
    /// it also ends when the shard drains.
    pub fn run_idle<'a, F: Future>(
        &'a mut self,
        at: Instant,
        idle: &'a IdleWakers,
        slot: &'a IdleSlot,
        mut fut: Pin<&'a mut F>,
    ) -> impl Future<Output = Result<F::Output, Stopped>> + 'a {
        self.arm(at);
        std::future::poll_fn(move |cx| {
            if idle.draining.get() {
                return Poll::Ready(Err(Stopped::Drained));
            }
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(v));
            }
            if self.poll_expired(at, cx) {
                return Poll::Ready(Err(Stopped::TimedOut));
            }
            idle.park(slot, cx.waker());
            Poll::Pending
        })
    }
}

/// The wakers of a shard's connections that wait idle for a request, so a
/// drain can end those waits. One slot per connection, reused across its
/// requests; a waker is cloned only when it changes.
#[derive(Default)]
pub struct IdleWakers {
    slots: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
    draining: Cell<bool>,
}

/// A connection's slot in [`IdleWakers`]; give it back with
/// [`IdleWakers::release`].
pub struct IdleSlot(usize);

impl IdleWakers {
    /// A slot for a new connection.
    pub fn register(&self) -> IdleSlot {
        if let Some(i) = self.free.borrow_mut().pop() {
            return IdleSlot(i);
        }
        let mut slots = self.slots.borrow_mut();
        slots.push(None);
        IdleSlot(slots.len() - 1)
    }

    /// Frees a closed connection's slot.
    pub fn release(&self, slot: IdleSlot) {
        if let Some(w) = self.slots.borrow_mut().get_mut(slot.0) {
            *w = None;
        }
        self.free.borrow_mut().push(slot.0);
    }

    fn park(&self, slot: &IdleSlot, waker: &Waker) {
        let mut slots = self.slots.borrow_mut();
        if let Some(w) = slots.get_mut(slot.0)
            && !w.as_ref().is_some_and(|w| w.will_wake(waker))
        {
            *w = Some(waker.clone());
        }
    }

    /// Starts the drain: every idle wait, now and later, ends. A woken
    /// connection that is busy rather than idle just polls once more.
    pub fn drain(&self) {
        self.draining.set(true);
        let wakers: Vec<Waker> = self
            .slots
            .borrow_mut()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for w in wakers {
            w.wake();
        }
    }

    /// Whether [`IdleWakers::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// Slots in use (connections registered).
    pub fn len(&self) -> usize {
        self.slots.borrow().len() - self.free.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timer;
    use std::time::Duration;

    fn on_runtime(f: impl std::future::Future<Output = ()>) {
        // No monoio timer: deadlines run on the shard's own timers.
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .expect("runtime")
            .block_on(crate::timer::with_timers(f));
    }

    /// Runs `fut` under a deadline `d` from now.
    async fn within(
        dl: &mut Deadline,
        d: Duration,
        fut: impl Future<Output = ()>,
    ) -> Result<(), Stopped> {
        dl.run(timer::after(d), std::pin::pin!(fut)).await
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn an_operation_past_its_deadline_stops() {
        on_runtime(async {
            let mut dl = Deadline::new();
            let r = within(&mut dl, 20 * MS, std::future::pending()).await;
            assert_eq!(r, Err(Stopped::TimedOut));
        });
    }

    #[test]
    fn moving_the_deadline_later_or_earlier_holds() {
        on_runtime(async {
            let mut dl = Deadline::new();
            // A short deadline, met at once; then a later one: the entry must
            // not fire at the first deadline.
            assert_eq!(within(&mut dl, 10 * MS, async {}).await, Ok(()));
            let slow_op = crate::timer::sleep(60 * MS);
            assert_eq!(
                within(&mut dl, 5000 * MS, slow_op).await,
                Ok(()),
                "a later deadline is not cut short by an earlier one"
            );
            // Then an earlier deadline than the one armed: it must fire.
            let r = within(&mut dl, 20 * MS, std::future::pending()).await;
            assert_eq!(r, Err(Stopped::TimedOut));
            // And after firing, the entry serves the next operation.
            let r = within(&mut dl, 5000 * MS, crate::timer::sleep(30 * MS)).await;
            assert_eq!(r, Ok(()));
        });
    }

    #[test]
    fn a_drain_ends_idle_waits_only() {
        on_runtime(async {
            let idle = std::rc::Rc::new(IdleWakers::default());
            let (a, b) = (idle.register(), idle.register());
            assert_eq!(idle.len(), 2);
            let waiter = {
                let idle = idle.clone();
                monoio::spawn(async move {
                    let mut dl = Deadline::new();
                    let far = timer::after(Duration::from_secs(60));
                    let r = dl
                        .run_idle(far, &idle, &a, std::pin::pin!(std::future::pending::<()>()))
                        .await;
                    idle.release(a);
                    r
                })
            };
            crate::timer::sleep(Duration::from_millis(10)).await;
            idle.drain();
            assert_eq!(waiter.await, Err(Stopped::Drained));
            // A busy operation is not ended by the drain.
            let mut dl = Deadline::new();
            let busy = within(&mut dl, 5000 * MS, crate::timer::sleep(10 * MS)).await;
            assert_eq!(busy, Ok(()));
            // An idle wait that starts after the drain ends at once.
            let far = timer::after(Duration::from_secs(60));
            let late = dl
                .run_idle(far, &idle, &b, std::pin::pin!(std::future::pending::<()>()))
                .await;
            assert_eq!(late, Err(Stopped::Drained));
            idle.release(b);
            assert!(idle.is_empty());
        });
    }
}
