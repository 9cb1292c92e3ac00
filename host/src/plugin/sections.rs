//! What a plugin declares outside its `describe` call, in custom sections of
//! the component: today its memory limit (`featherflow:memory-limit-mib`,
//! the limit as decimal ASCII digits). A custom section is readable before
//! the component is compiled or instantiated, and adding one changes
//! nothing in the contract, so 0.1.0 plugins that carry none keep loading.
//!
//! `featherflow plugin build` appends the section from the project's
//! `featherflow-plugin.toml` (`memory-limit-mib = N`) in every language.

/// The custom section that declares a plugin's memory limit.
pub const MEMORY_LIMIT_SECTION: &str = "featherflow:memory-limit-mib";

/// The memory limit the component in `bytes` declares, in MiB, if any: the
/// last `featherflow:memory-limit-mib` section among the component's
/// top-level sections. A section that is not a positive decimal number is
/// an error naming it.
pub fn declared_memory_limit_mib(bytes: &[u8]) -> Result<Option<usize>, String> {
    let mut found = None;
    for (name, payload) in custom_sections(bytes) {
        if name != MEMORY_LIMIT_SECTION.as_bytes() {
            continue;
        }
        let text = std::str::from_utf8(payload).unwrap_or("");
        let mib = text
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0 && n <= 1 << 20)
            .ok_or_else(|| format!("custom section {MEMORY_LIMIT_SECTION}: {text:?} is not a number of MiB"))?;
        found = Some(mib);
    }
    Ok(found)
}

/// `component` with a `featherflow:memory-limit-mib` section of `mib`
/// appended (a section appended later wins over an earlier one).
pub fn with_memory_limit(mut component: Vec<u8>, mib: usize) -> Vec<u8> {
    let payload = mib.to_string();
    let mut body = Vec::new();
    leb128(&mut body, MEMORY_LIMIT_SECTION.len());
    body.extend_from_slice(MEMORY_LIMIT_SECTION.as_bytes());
    body.extend_from_slice(payload.as_bytes());
    component.push(0); // custom section
    leb128(&mut component, body.len());
    component.extend_from_slice(&body);
    component
}

fn leb128(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_leb128(bytes: &[u8], at: &mut usize) -> Option<usize> {
    let mut n = 0usize;
    for shift in (0..35).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        n |= ((byte & 0x7f) as usize) << shift;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// The (name, payload) of each top-level custom section, in order. Stops at
/// the first malformed section: compiling the component reports that.
fn custom_sections(bytes: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return out;
    }
    let mut at = 8;
    while at < bytes.len() {
        let id = bytes[at];
        at += 1;
        let Some(size) = read_leb128(bytes, &mut at) else { break };
        let Some(section) = at.checked_add(size).and_then(|end| bytes.get(at..end)) else {
            break;
        };
        at += size;
        if id == 0 {
            let mut n = 0;
            let Some(len) = read_leb128(section, &mut n) else { break };
            let Some(name) = n.checked_add(len).and_then(|end| section.get(n..end)) else {
                break;
            };
            out.push((name, &section[n + len..]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_appended_limit_is_read_back_and_the_last_one_wins() {
        // A component header and one unrelated custom section.
        let mut c = b"\0asm\x0d\0\x01\0".to_vec();
        c.extend_from_slice(&[0, 4, 3, b'a', b'b', b'c']);
        assert_eq!(declared_memory_limit_mib(&c), Ok(None));
        let c = with_memory_limit(c, 300);
        assert_eq!(declared_memory_limit_mib(&c), Ok(Some(300)));
        let c = with_memory_limit(c, 96);
        assert_eq!(declared_memory_limit_mib(&c), Ok(Some(96)));
    }

    #[test]
    fn a_limit_that_is_not_a_number_is_named() {
        let mut c = b"\0asm\x0d\0\x01\0".to_vec();
        let name = MEMORY_LIMIT_SECTION.as_bytes();
        c.push(0);
        c.push((1 + name.len() + 3) as u8);
        c.push(name.len() as u8);
        c.extend_from_slice(name);
        c.extend_from_slice(b"lot");
        let err = declared_memory_limit_mib(&c).unwrap_err();
        assert!(err.contains(MEMORY_LIMIT_SECTION) && err.contains("lot"), "{err}");
    }

    #[test]
    fn truncated_bytes_declare_nothing() {
        assert_eq!(declared_memory_limit_mib(b"\0asm\x0d\0\x01\0\0\x7f"), Ok(None));
        assert_eq!(declared_memory_limit_mib(b"garbage"), Ok(None));
    }
}
