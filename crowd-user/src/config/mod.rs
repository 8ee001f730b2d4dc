//! Reading configuration from disk: the only module of the engine side that does file I/O.
//! YAML is read strictly and compiled once; every error names the file, the line and the field.
pub mod crowdsec;
pub mod defaults;
pub mod hub;
pub mod load;

pub use load::LoadError;

/// A size as admins write it: `256MiB`, `64M`, `1GiB`, `512k`, `1000000` (bytes). Binary and
/// decimal suffixes both count in powers of two, as memory does.
///
/// # Errors
/// Text that is not a number with an optional unit, or zero.
pub fn byte_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("`{s}`: expected a size such as 256MiB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("`{s}`: unknown unit `{other}` (B, KiB, MiB, GiB)")),
    };
    let bytes = (n * mult) as usize;
    if bytes == 0 {
        return Err(format!("`{s}`: a size must be above zero"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_admins_write_them() {
        assert_eq!(super::byte_size("256MiB"), Ok(256 << 20));
        assert_eq!(super::byte_size("64M"), Ok(64 << 20));
        assert_eq!(super::byte_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(super::byte_size("4096"), Ok(4096));
        assert!(super::byte_size("lots").is_err());
        assert!(super::byte_size("10 parsecs").is_err());
        assert!(super::byte_size("0").is_err());
    }
}
