//! Waiting for a check's tasks: woken by task exits, with a helper thread only for the deadline
//! and for re-reading counts that cannot wake anyone (tokio's alive-task count).
//!
//! The deadline is kept in real time on purpose: a runtime with paused time (`start_paused`)
//! would otherwise jump straight to it.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Drives a future on the current thread, parking between polls. Used by sync tests, whose body
/// runs outside any runtime.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

/// Resolves once `done` says so, or with `false` when `deadline` passes and `may_extend` does not
/// ask for more time, up to `hard_deadline`.
pub(crate) struct Until<Done, Extend> {
    pub(crate) done: Done,
    pub(crate) may_extend: Extend,
    pub(crate) register: Box<dyn Fn(&Waker) + Send>,
    pub(crate) deadline: Instant,
    pub(crate) hard_deadline: Instant,
    /// Re-check this often even without a wake (for counts that wake nobody).
    pub(crate) recheck_every: Option<Duration>,
    pub(crate) timer: Option<Timer>,
}

/// How often the deadline is pushed back while some task is still waiting for a worker.
pub(crate) const EXTENSION_STEP: Duration = Duration::from_millis(10);

impl<Done, Extend> Future for Until<Done, Extend>
where
    Done: FnMut() -> bool + Unpin,
    Extend: FnMut() -> bool + Unpin,
{
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let this = self.get_mut();
        // Register before looking, so an exit between the look and the return still wakes us.
        (this.register)(cx.waker());
        if (this.done)() {
            return Poll::Ready(true);
        }
        let now = Instant::now();
        if now >= this.deadline {
            if now < this.hard_deadline && (this.may_extend)() {
                this.deadline = (now + EXTENSION_STEP).min(this.hard_deadline);
            } else {
                return Poll::Ready(false);
            }
        }
        let wake_at = match this.recheck_every {
            Some(every) => (now + every).min(this.deadline),
            None => this.deadline,
        };
        this.timer
            .get_or_insert_with(Timer::start)
            .wake_at(wake_at, cx.waker());
        Poll::Pending
    }
}

/// A helper thread that wakes a waker at a given instant; it ends when the timer is dropped.
pub(crate) struct Timer {
    shared: Arc<TimerShared>,
    thread: Thread,
}

#[derive(Default)]
struct TimerShared {
    stop: AtomicBool,
    next: Mutex<Option<(Instant, Waker)>>,
}

impl Timer {
    fn start() -> Timer {
        let shared = Arc::new(TimerShared::default());
        let for_thread = shared.clone();
        let handle = thread::Builder::new()
            .name("leak-check-timer".into())
            .spawn(move || run_timer(&for_thread))
            .expect("leak-check: cannot start its timer thread");
        Timer {
            shared,
            thread: handle.thread().clone(),
        }
    }

    fn wake_at(&self, at: Instant, waker: &Waker) {
        *self.shared.next.lock() = Some((at, waker.clone()));
        self.thread.unpark();
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

fn run_timer(shared: &TimerShared) {
    while !shared.stop.load(Ordering::SeqCst) {
        let due = shared.next.lock().as_ref().map(|(at, _)| *at);
        match due {
            None => thread::park(),
            Some(at) => {
                let now = Instant::now();
                if now < at {
                    thread::park_timeout(at - now);
                    continue;
                }
                let fired = shared.next.lock().take_if(|(at, _)| *at <= now);
                if let Some((_, waker)) = fired {
                    waker.wake();
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// Runs `future` until `deadline` (real time); `None` if the deadline came first.
    pub(crate) struct TimeLimited<F> {
        #[pin]
        future: F,
        deadline: Instant,
        timer: Option<Timer>,
    }
}

impl<F> TimeLimited<F> {
    pub(crate) fn new(future: F, deadline: Instant) -> Self {
        TimeLimited {
            future,
            deadline,
            timer: None,
        }
    }
}

impl<F: Future> Future for TimeLimited<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Some(output));
        }
        if Instant::now() >= *this.deadline {
            return Poll::Ready(None);
        }
        this.timer
            .get_or_insert_with(Timer::start)
            .wake_at(*this.deadline, cx.waker());
        Poll::Pending
    }
}
