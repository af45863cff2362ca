//! End-to-end tests: real HTTP against the real server, real Redis, a real embedded store in a
//! temp dir, real ffmpeg.

mod cluster;
mod crash;
mod deploy;
mod helpers;
mod hostile;
mod interact;
mod media;
mod media_store;
mod near;
mod openapi;
mod resilience;
mod social;
mod store;
mod users;
