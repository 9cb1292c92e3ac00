//! Hostile input lines: every class of bad record the parser knows, and
//! worse (megabyte lines, 100 000 levels of nesting, 400-digit numbers,
//! odd times, NUL bytes, lone surrogates, duplicate keys, invalid UTF-8),
//! damaged at random.
//!
//! Shared by the parser's tests (`event/tests/hostile.rs`) and the engine's
//! (`tests/all/hostile_input.rs`, which includes this file by path), so it
//! names nothing of the crate: only std, proptest and serde_json.
//!
//! A [`Spec`] describes one line in a few words, so that a failing case
//! prints readably even when its line is megabytes long; [`Spec::build`]
//! makes the bytes.

use proptest::prelude::*;
use proptest::sample::{Index, select};

/// The parser's time range (`event::MIN_TIME_MS`, `event::MAX_TIME_MS`;
/// the parser's tests check that these are the same).
pub const MIN_TIME_MS: i64 = -62_167_219_200_000 - 18 * 3_600_000;
pub const MAX_TIME_MS: i64 = 253_402_300_800_000 + 18 * 3_600_000;

pub const MIB: usize = 1 << 20;

/// The four fields, in the order of the common layout.
pub const FIELDS: [&str; 4] = ["event_time", "event_type", "user_id", "price"];

/// A valid value of each field.
pub const GOOD: [&str; 4] = ["\"2024-01-01T10:00:00\"", "\"view\"", "\"u1\"", "29.99"];

/// `{"event_time":…,"event_type":…,"user_id":…,"price":…}` with these values.
pub fn line(values: [&str; 4]) -> String {
    let members: Vec<String> = FIELDS.iter().zip(values).map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", members.join(","))
}

/// A valid line with field `i` (0-3) set to the raw JSON `value`.
pub fn line_with(i: usize, value: &str) -> String {
    let mut values = GOOD;
    values[i] = value;
    line(values)
}

/// One hostile line: a shape, then damage.
#[derive(Debug, Clone)]
pub struct Spec {
    pub shape: Shape,
    pub damage: Vec<Damage>,
}

#[derive(Debug, Clone)]
pub enum Shape {
    /// An object of these members (raw key text with its quotes, raw value
    /// text), after `lead` and before `trail`.
    Object {
        members: Vec<(String, String)>,
        spaced: bool,
        lead: &'static str,
        trail: &'static str,
    },
    /// Any bytes.
    Raw(Vec<u8>),
    /// A megabyte or more (or very deep).
    Long(Long),
}

#[derive(Debug, Clone)]
pub enum Long {
    /// A valid line whose field `field` is a string of `unit` repeated to
    /// at least `len` bytes.
    Text {
        field: usize,
        len: usize,
        unit: &'static str,
    },
    /// A valid line whose field `field` is a number of `digits` digits
    /// (`0.000…1` when `fraction`).
    Number {
        field: usize,
        digits: usize,
        fraction: bool,
    },
    /// A valid line with `n` extra members over `distinct` keys.
    Members { n: usize, distinct: usize },
    /// `depth` times `open`, then (when `closed`) as many `close`; at the
    /// root or as the value of an extra member of a valid line.
    Nested {
        depth: usize,
        open: &'static str,
        close: &'static str,
        closed: bool,
        in_member: bool,
    },
    /// `len` bytes of `byte`, before or after a valid line.
    Fill { len: usize, byte: u8, line_first: bool },
}

/// Damage to a built line; indices are taken modulo its length.
#[derive(Debug, Clone)]
pub enum Damage {
    Truncate(Index),
    Insert(Index, &'static [u8]),
    Replace(Index, u8),
    Remove(Index),
    /// The bytes between the two positions, once more.
    Repeat(Index, Index),
}

impl Spec {
    pub fn build(&self) -> Vec<u8> {
        let mut b = self.shape.build();
        for d in &self.damage {
            d.apply(&mut b);
        }
        b
    }
}

impl Shape {
    fn build(&self) -> Vec<u8> {
        match self {
            Shape::Object {
                members,
                spaced,
                lead,
                trail,
            } => {
                let (colon, comma) = if *spaced { (": ", ", ") } else { (":", ",") };
                let members: Vec<String> = members.iter().map(|(k, v)| format!("{k}{colon}{v}")).collect();
                format!("{lead}{{{}}}{trail}", members.join(comma)).into_bytes()
            }
            Shape::Raw(bytes) => bytes.clone(),
            Shape::Long(long) => long.build(),
        }
    }
}

impl Long {
    fn build(&self) -> Vec<u8> {
        match *self {
            Long::Text { field, len, unit } => {
                let text = unit.repeat(len.div_ceil(unit.len()));
                line_with(field, &format!("\"{text}\"")).into_bytes()
            }
            Long::Number {
                field,
                digits,
                fraction,
            } => {
                let number = if fraction {
                    format!("0.{}1", "0".repeat(digits))
                } else {
                    format!("1{}", "0".repeat(digits))
                };
                line_with(field, &number).into_bytes()
            }
            Long::Members { n, distinct } => {
                let mut text = line(GOOD);
                text.pop();
                for i in 0..n {
                    text.push_str(&format!(",\"k{}\":{i}", i % distinct.max(1)));
                }
                text.push('}');
                text.into_bytes()
            }
            Long::Nested {
                depth,
                open,
                close,
                closed,
                in_member,
            } => {
                let mut value = open.repeat(depth);
                if closed {
                    value.push('1');
                    value.push_str(&close.repeat(depth));
                }
                if in_member {
                    line(GOOD)
                        .replacen('{', &format!("{{\"deep\":{value},"), 1)
                        .into_bytes()
                } else {
                    value.into_bytes()
                }
            }
            Long::Fill { len, byte, line_first } => {
                let fill = vec![byte; len];
                let line = line(GOOD).into_bytes();
                if line_first {
                    [line, fill].concat()
                } else {
                    [fill, line].concat()
                }
            }
        }
    }
}

impl Damage {
    fn apply(&self, b: &mut Vec<u8>) {
        let at = |i: &Index| if b.is_empty() { 0 } else { i.index(b.len()) };
        match self {
            Damage::Truncate(i) => b.truncate(at(i)),
            Damage::Insert(i, bytes) => {
                let p = at(i);
                b.splice(p..p, bytes.iter().copied());
            }
            Damage::Replace(i, byte) => {
                if !b.is_empty() {
                    let p = at(i);
                    b[p] = *byte;
                }
            }
            Damage::Remove(i) => {
                if !b.is_empty() {
                    let p = at(i);
                    b.remove(p);
                }
            }
            Damage::Repeat(i, j) => {
                let (p, q) = (at(i), at(j));
                let copy = b[p.min(q)..p.max(q)].to_vec();
                b.splice(p.max(q)..p.max(q), copy);
            }
        }
    }
}

/// Any hostile line.
pub fn spec() -> impl Strategy<Value = Spec> {
    let shape = prop_oneof![
        12 => object(),
        3 => raw().prop_map(Shape::Raw),
        1 => long().prop_map(Shape::Long),
    ];
    let damaged = prop::bool::weighted(0.3);
    (shape, damaged, prop::collection::vec(damage(), 1..4)).prop_map(|(shape, damaged, damage)| Spec {
        shape,
        damage: if damaged { damage } else { Vec::new() },
    })
}

/// The four fields, each valid or hostile, some dropped, some repeated
/// (also under escaped names), extras anywhere, in one of a few orders.
fn object() -> impl Strategy<Value = Shape> {
    (
        [field_value(0), field_value(1), field_value(2), field_value(3)],
        prop::collection::vec(prop::bool::weighted(0.08), 4),
        prop::collection::vec((any::<Index>(), key(), any_value()), 0..3),
        0usize..8,
        any::<bool>(),
        prop_oneof![
            6 => Just(""),
            1 => select(vec![" ", "\t\r\n ", "\u{feff}", "\u{0}", "x", "[", "\"s\""]),
        ],
        prop_oneof![
            4 => Just(""),
            1 => select(vec![" \n", "}", ",", "garbage", "\u{0}", "\u{fffd}", "{\"price\":1}", "\\ud800"]),
        ],
    )
        .prop_map(|(values, dropped, extras, rotate, spaced, lead, trail)| {
            let mut members: Vec<(String, String)> = FIELDS
                .iter()
                .zip(values)
                .zip(dropped)
                .filter(|(_, dropped)| !dropped)
                .map(|((k, v), _)| (format!("\"{k}\""), v))
                .collect();
            if rotate < 4 && !members.is_empty() {
                let n = rotate % members.len();
                members.rotate_left(n);
            }
            for (at, k, v) in extras {
                let p = at.index(members.len() + 1);
                members.insert(p, (k.to_string(), v));
            }
            Shape::Object {
                members,
                spaced,
                lead,
                trail,
            }
        })
}

/// A value for field `i`: valid, hostile for that field, or anything.
fn field_value(i: usize) -> BoxedStrategy<String> {
    let hostile = match i {
        0 => prop_oneof![odd_time(), millis()].boxed(),
        1 | 2 => prop_oneof![hostile_string(), millis()].boxed(),
        _ => huge_number().boxed(),
    };
    prop_oneof![6 => Just(GOOD[i].to_string()), 4 => hostile, 1 => any_value()].boxed()
}

fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![2 => odd_time(), 2 => millis(), 2 => huge_number(), 2 => hostile_string(), 1 => structural()]
}

/// Keys of extra members: plain, the four fields again (duplicates), the
/// four fields spelled with escapes, and broken ones.
fn key() -> impl Strategy<Value = &'static str> {
    let valid = select(vec![
        "\"sku\"",
        "\"a\"",
        "\"\"",
        "\"event_time\"",
        "\"event_type\"",
        "\"user_id\"",
        "\"price\"",
        "\"event\\u005ftime\"",
        "\"\\u0065vent_type\"",
        "\"user_\\u0069d\"",
        "\"pric\\u0065\"",
        "\"price\\u0000\"",
        "\"PRICE\"",
        "\"\\ud800\"",
        "\"\\udbff\\udfff\"",
    ]);
    let broken = select(vec!["\"\u{0}\"", "\"k\\\"", "sku", "1"]);
    prop_oneof![8 => valid, 1 => broken]
}

/// `event_time` strings: years 0 and 9999, impossible dates, 24:00, leap
/// seconds, 0-25 fraction digits, offsets up to ±99:99, and oddities.
fn odd_time() -> impl Strategy<Value = String> {
    let year = prop_oneof![select(vec![0i64, 1, 1969, 1970, 2016, 2024, 9999]), 0i64..=9999];
    let formatted = (
        (year, 0u32..=13, 0u32..=32),
        (0u32..=25, 0u32..=61, 0u32..=61),
        prop_oneof![Just(String::new()), Just(".".to_string()), "\\.[0-9]{1,25}"],
        select(vec!['T', 'T', 't', ' ', '_']),
        select(vec![
            "",
            "",
            "Z",
            "z",
            "+00:00",
            "+18:00",
            "-18:00",
            "+18:01",
            "-18:01",
            "+25:00",
            "-25:00",
            "+24",
            "+2400",
            "+99:99",
            "+09:60",
            "+9",
            "+09:0",
            "+",
            "-",
            "+09:00:00",
            "UTC",
            "[UTC]",
            " ",
            "\\u0000",
            "+\u{ff10}9:00",
        ]),
    )
        .prop_map(|((y, mo, d), (h, mi, s), fraction, t, zone)| {
            format!("\"{y:04}-{mo:02}-{d:02}{t}{h:02}:{mi:02}:{s:02}{fraction}{zone}\"")
        });
    let special = select(vec![
        "\"0000-01-01T00:00:00\"",
        "\"0000-01-01T00:00:00+18:00\"",
        "\"9999-12-31T23:59:59.999999999\"",
        "\"9999-12-31T24:00:00-18:00\"",
        "\"9999-12-31T24:00:00.000000001\"",
        "\"+10000-01-01T00:00:00Z\"",
        "\"-0001-12-31T23:59:59Z\"",
        "\"2016-12-31T23:59:60Z\"",
        "\"2016-12-31T23:59:60.999Z\"",
        "\"2024-01-01T12:00:60\"",
        "\"2024-02-29T00:00:00\"",
        "\"2023-02-29T00:00:00\"",
        "\"2024-01-01T10:00:00.12345678901234567890\"",
        "\"2024-01-01T10:00:00\\u0000\"",
        "\"\\u0032\\u0030\\u0032\\u0034-01-01T10:00:00\"",
        "\"\u{ff12}\u{ff10}\u{ff12}\u{ff14}-01-01T10:00:00\"",
        "\"2024-01-01T10:00:00\u{0}\"",
        "\"\"",
        "\"T\"",
        "\"2024-01-01\"",
    ])
    .prop_map(String::from);
    prop_oneof![3 => formatted, 1 => special]
}

/// Integers (epoch milliseconds, integer user ids): the edges of the time
/// range and of i64, and hundreds of digits.
fn millis() -> impl Strategy<Value = String> {
    let edges = select(vec![
        MIN_TIME_MS - 1,
        MIN_TIME_MS,
        MAX_TIME_MS,
        MAX_TIME_MS + 1,
        i64::MIN,
        i64::MAX,
        -1,
        0,
        1_704_103_200_000,
    ])
    .prop_map(|t| t.to_string());
    let other = select(vec![
        "-0",
        "1e3",
        "1.0",
        "1704103200000.5",
        "-9223372036854775809",
        "18446744073709551616",
    ])
    .prop_map(String::from);
    prop_oneof![
        any::<i64>().prop_map(|t| t.to_string()),
        edges,
        other,
        "-?[1-9][0-9]{19,400}",
    ]
}

/// Numbers: beyond f64 (1e400, 400 digits), denormals, exponents with 25
/// digits, more digits than the fast paths take; and the same as strings.
fn huge_number() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        select(vec![
            "1e400",
            "-1e400",
            "1e-400",
            "4.9e-324",
            "1.7976931348623157e308",
            "1.7976931348623159e308",
            "1e99999999999999999999",
            "-0",
            "-0.0",
            "0e0",
            "9007199254740993",
            "123456789012345.6",
            "1234567890123456",
            "0.1234567890123456789",
        ])
        .prop_map(String::from),
        "-?[1-9][0-9]{300,420}",
        "-?0\\.[0-9]{300,420}",
        "-?[1-9][0-9]{0,20}(\\.[0-9]{1,20})?[eE][+-]?[0-9]{1,25}",
        "-?(0|[1-9][0-9]{0,16})\\.[0-9]{1,20}",
    ];
    (number, prop::bool::weighted(0.2)).prop_map(|(n, quoted)| if quoted { format!("\"{n}\"") } else { n })
}

/// Strings: empty, NUL (escaped and raw), lone and paired surrogates,
/// broken escapes, and any Unicode (escaped properly, or pasted raw).
fn hostile_string() -> impl Strategy<Value = String> {
    let special = select(vec![
        "\"\"",
        "\"\\u0000\"",
        "\"a\u{0}b\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\ud800\"",
        "\"\\udc00\\ud800\"",
        "\"\\ud800\\u0041\"",
        "\"\\ud800x\"",
        "\"\\udbff\\udfff\"",
        "\"\\uD834\\uDD1E\"",
        "\"\\u\"",
        "\"\\u12\"",
        "\"\\uzzzz\"",
        "\"\\x41\"",
        "\"\\\"",
        "\"\u{feff}\"",
        "\"\u{1f600}\"",
        "\"\\/\\b\\f\\n\\r\\t\"",
        "'single'",
        "\"unterminated",
    ])
    .prop_map(String::from);
    prop_oneof![
        4 => special,
        3 => any::<String>().prop_map(|s| serde_json::to_string(&s).expect("a string serialises")),
        1 => any::<String>().prop_map(|s| format!("\"{s}\"")),
    ]
}

/// Other values: containers, literals, and things that are not JSON.
fn structural() -> impl Strategy<Value = String> {
    select(vec![
        "[]",
        "{}",
        "null",
        "true",
        "false",
        "tru",
        "nul",
        "[1,]",
        "{\"a\":}",
        "{\"a\" 1}",
        "NaN",
        "Infinity",
        "-Infinity",
        "/*c*/1",
        "01",
        "1.",
        ".5",
        "+1",
        "0x10",
        "1e",
        "-",
        "[",
        "{",
        "]",
        "}",
        "[[[[1]]]]",
        "\u{0}",
    ])
    .prop_map(String::from)
}

/// Raw lines: empty and blank, a BOM, NUL, scalars at the root (with
/// Jackson's root rules), random bytes and JSON-ish noise.
fn raw() -> impl Strategy<Value = Vec<u8>> {
    let special = select(vec![
        &b""[..],
        b" ",
        b"\t\r\n ",
        b"\xef\xbb\xbf{}",
        b"{}",
        b"[]",
        b"null",
        b"nullx",
        b"1x",
        b"1 ",
        b"\"str\"",
        b"\x00",
        b"{\x00}",
        b"\x00{\"event_time\":0}",
        b"{\"event_time\"",
        b"\xff\xfe",
        b"\xc0\xaf{}",
        b"{\"a\xed\xa0\x80\":1}",
        b"\xf4\x90\x80\x80",
    ])
    .prop_map(<[u8]>::to_vec);
    prop_oneof![
        special,
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(select(b"{}[]\":,0123456789.eE+-tfrunlsa\\ \t\r\n\x00u".to_vec()), 0..64),
    ]
}

/// Megabyte lines and deep nesting.
fn long() -> impl Strategy<Value = Long> {
    let len = MIB..=MIB + 64;
    prop_oneof![
        (
            0usize..4,
            len.clone(),
            select(vec![
                "a",
                "\\n",
                "\\u00e9",
                "\u{e9}",
                "\\ud83d\\ude00",
                "\\ud800",
                "\\u0000",
                " "
            ]),
        )
            .prop_map(|(field, len, unit)| Long::Text { field, len, unit }),
        (0usize..4, select(vec![400usize, 5000, MIB]), any::<bool>()).prop_map(|(field, digits, fraction)| {
            Long::Number {
                field,
                digits,
                fraction,
            }
        }),
        (select(vec![20usize, 1000, 120_000]), select(vec![1usize, 7, 100_000]))
            .prop_map(|(n, distinct)| Long::Members { n, distinct }),
        (
            select(vec![998usize, 999, 1000, 1001, 100_000]),
            select(vec![("[", "]"), ("{\"a\":", "}")]),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(depth, (open, close), closed, in_member)| Long::Nested {
                depth,
                open,
                close,
                closed,
                in_member,
            }),
        (len, select(b" \tx\x00\xff\"\\[{0\x80".to_vec()), any::<bool>())
            .prop_map(|(len, byte, line_first)| Long::Fill { len, byte, line_first }),
    ]
}

fn damage() -> impl Strategy<Value = Damage> {
    let bytes = select(vec![
        &b"\x00"[..],
        b"\xff",
        b"\xc3",
        b"\xed\xa0\x80",
        b"\"",
        b"\\",
        b"\\u",
        b"\\ud800",
        b"{",
        b"[",
        b"}",
        b"]",
        b",",
        b":",
        b" ",
        b"e",
        b"-",
        b"9",
    ]);
    prop_oneof![
        any::<Index>().prop_map(Damage::Truncate),
        (any::<Index>(), bytes).prop_map(|(i, b)| Damage::Insert(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Replace(i, b)),
        any::<Index>().prop_map(Damage::Remove),
        (any::<Index>(), any::<Index>()).prop_map(|(i, j)| Damage::Repeat(i, j)),
    ]
}
