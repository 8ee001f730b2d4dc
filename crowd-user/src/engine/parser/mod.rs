//! CrowdSec parser nodes (filled in below).
