// stop_signal.h: SIGINT / SIGTERM ask a training loop to stop after the current step, save a
// checkpoint and exit (status 130), instead of dying mid-write. One handler for sft and rl.
#pragma once

namespace rusca {

class StopSignals {
public:
    StopSignals();   // installs the handlers (and clears any earlier request)
    ~StopSignals();  // restores the previous handlers
    bool requested() const;

private:
    void (*old_int_)(int);
    void (*old_term_)(int);
};

}  // namespace rusca
