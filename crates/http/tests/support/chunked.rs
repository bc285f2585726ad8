//! The body of a raw HTTP/1.1 response, for tests that speak HTTP over a
//! plain socket (the inspection API's and the memos binary's): a chunked
//! transfer is decoded. Works on bytes, so a chunk that ends inside a
//! UTF-8 character is joined before the text is decoded.

/// The body of `response` (head and body as received).
pub fn body_of(response: &[u8]) -> String {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let body = response.get(split + 4..).unwrap_or_default();
    if !head.contains("transfer-encoding: chunked") {
        return String::from_utf8_lossy(body).into_owned();
    }
    let (mut out, mut rest) = (Vec::new(), body);
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]);
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let after = &rest[eol + 2..];
        if n == 0 || after.len() < n {
            break;
        }
        out.extend_from_slice(&after[..n]);
        rest = after[n..].strip_prefix(b"\r\n").unwrap_or(&after[n..]);
    }
    String::from_utf8_lossy(&out).into_owned()
}
