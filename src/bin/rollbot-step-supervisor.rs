//! The step supervisor (`rollbot::engine::supervisor`) as a small binary of its own: starting a
//! step then costs one light process more, not a second copy of rollbot.
fn main() {
    rollbot::engine::supervisor::main(std::env::args_os().collect());
}
