package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// notifier speaks systemd's notify protocol (sd_notify(3)) when the daemon
// runs as a Type=notify service: READY=1 once the sockets are bound and
// the connections loaded, RELOADING=1 and READY=1 around a reload,
// STOPPING=1 at shutdown, STATUS= lines for `systemctl status`, and
// WATCHDOG=1 while the engine answers. Without NOTIFY_SOCKET it does
// nothing.
type notifier struct {
	log *slog.Logger
	// send is sd.SdNotify; tests replace it.
	send func(state string) (bool, error)
}

func newNotifier(log *slog.Logger) *notifier {
	return &notifier{log: log, send: func(state string) (bool, error) { return sd.SdNotify(false, state) }}
}

func (n *notifier) notify(state string) {
	if _, err := n.send(state); err != nil {
		n.log.Warn("systemd notify failed", "state", state, "err", err)
	}
}

// ready says the daemon serves; status is the STATUS= line.
func (n *notifier) ready(status func() string) {
	n.notify(sd.SdNotifyReady + "\nSTATUS=" + status())
}

// reloading says a reload started. MONOTONIC_USEC lets systemd 253 and
// later (Type=notify-reload) tell this reload from an earlier one.
func (n *notifier) reloading() {
	n.notify(sd.SdNotifyReloading + "\n" + sd.SdNotifyMonotonicUsec())
}

// stopping says the daemon is shutting down.
func (n *notifier) stopping() {
	n.notify(sd.SdNotifyStopping + "\nSTATUS=deleting SAs and stopping")
}

// watchdogInterval is how often to kick the watchdog: half the
// WATCHDOG_USEC systemd set (sd_watchdog_enabled(3)), 0 when it set none.
func watchdogInterval() time.Duration {
	d, err := sd.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0
	}
	return d / 2
}

// watchdog kicks systemd's watchdog every interval for as long as check
// returns in time: check is a round trip through the engine's locks and
// the daemon's main loop, so a hung engine or daemon stops the kicks and
// systemd restarts the service. A check still running at the next tick is
// not started again. It returns when ctx ends.
func (n *notifier) watchdog(ctx context.Context, interval time.Duration, check func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	results := make(chan error, 1)
	inFlight := false
	start := func() {
		inFlight = true
		go func() { results <- check(ctx) }()
	}
	start()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-results:
			inFlight = false
			if err != nil {
				n.log.Error("health check failed: not kicking the watchdog", "err", err)
				continue
			}
			n.notify(sd.SdNotifyWatchdog)
		case <-t.C:
			if inFlight {
				n.log.Warn("the engine has not answered the last health check", "waiting_since_at_least", fmt.Sprint(interval))
				continue
			}
			start()
		}
	}
}
