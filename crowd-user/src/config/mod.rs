//! Reading configuration from disk: the only module of the engine side that does file I/O.
//! YAML is read strictly and compiled once; every error names the file, the line and the field.
pub mod crowdsec;
pub mod defaults;
pub mod hub;
pub mod load;

pub use load::LoadError;
