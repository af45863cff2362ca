//! Operations: the demo content (`serve --demo`, `seed`), the benchmark data set
//! (`seed --bench`), the consistency check (`check`) and the Prometheus metrics (`/metrics`).

pub mod bench;
pub mod check;
pub mod demo;
pub mod metrics;
