//! The `user_features` view: its declaration, its state ([`Counts`]), the
//! state's 32-byte encoding and the arithmetic over it.
//!
//! Kept apart from the `Feature` wiring in `lib.rs` because the encoding is a
//! persisted format (the host checkpoints these bytes): the hot-swap test
//! guests `v2-user-activity` and `v3-user-activity` include this very file by
//! path, so they cannot drift from the bytes this plugin writes. It must
//! therefore depend on nothing but `featherflow_sdk`.

use featherflow_sdk::{Declaration, Event, Value, Window};

/// Ten-minute slices of a one-hour window.
const SIZE_MS: u64 = 3_600_000;
const SLIDE_MS: u64 = 600_000;

/// The view's declaration, without a version (each plugin sets its own).
pub fn declaration() -> Declaration {
    Declaration::sliding("user_features", SIZE_MS, SLIDE_MS)
        .description("Views, carts and purchases per user over the last hour, and the average viewed price")
        .key_field("user_id")
        .text("user_id")
        .integer("view_count_1h")
        .integer("cart_count_1h")
        .integer("purchase_count_1h")
        .float("avg_viewed_price_1h")
        .ttl_seconds(7200)
        .state_version(1)
}

/// Counts of one slice (or, merged, of one window).
///
/// Encoding (state version 1): `u64 views`, `u64 carts`, `u64 purchases`,
/// `f64 view_price_sum`, little-endian, 32 bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Counts {
    pub views: u64,
    pub carts: u64,
    pub purchases: u64,
    /// The sum, not the average: sums merge exactly, averages do not.
    pub view_price_sum: f64,
}

impl Counts {
    pub const ENCODED_LEN: usize = 32;

    /// Counts `view`, `cart` and `purchase` (case-sensitive, as the Flink
    /// job compared them); other event types touch no counter.
    pub fn add_event(&mut self, event: &Event<'_>) {
        match event.event_type {
            "view" => {
                self.views = self.views.saturating_add(1);
                self.view_price_sum += event.price;
            }
            "cart" => self.carts = self.carts.saturating_add(1),
            "purchase" => self.purchases = self.purchases.saturating_add(1),
            _ => {}
        }
    }

    /// `self += other`. Saturating, so a corrupt state cannot trap the plugin.
    pub fn add(&mut self, other: &Counts) {
        self.views = self.views.saturating_add(other.views);
        self.carts = self.carts.saturating_add(other.carts);
        self.purchases = self.purchases.saturating_add(other.purchases);
        self.view_price_sum += other.view_price_sum;
    }

    /// Sum of view prices / view count, `0.0` when there were no views.
    pub fn avg_viewed_price(&self) -> f64 {
        if self.views == 0 {
            0.0
        } else {
            self.view_price_sum / self.views as f64
        }
    }

    /// The view's output fields, in declaration order.
    pub fn values(&self, window: &Window<'_>) -> Vec<Value> {
        vec![
            Value::Text(window.key.to_owned()),
            Value::Integer(to_i64(self.views)),
            Value::Integer(to_i64(self.carts)),
            Value::Integer(to_i64(self.purchases)),
            Value::Float(self.avg_viewed_price()),
        ]
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        // Assembled first, appended once: one capacity check per state.
        let mut bytes = [0; Self::ENCODED_LEN];
        bytes[..8].copy_from_slice(&self.views.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.carts.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.purchases.to_le_bytes());
        bytes[24..].copy_from_slice(&self.view_price_sum.to_le_bytes());
        out.extend_from_slice(&bytes);
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let bytes: &[u8; Self::ENCODED_LEN] = bytes.try_into().map_err(|_| {
            format!(
                "user_features state v1 is {} bytes, got {}",
                Self::ENCODED_LEN,
                bytes.len()
            )
        })?;
        let word = |i: usize| {
            let mut w = [0; 8];
            w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            w
        };
        Ok(Counts {
            views: u64::from_le_bytes(word(0)),
            carts: u64::from_le_bytes(word(1)),
            purchases: u64::from_le_bytes(word(2)),
            view_price_sum: f64::from_le_bytes(word(3)),
        })
    }
}

/// Counts are far below `i64::MAX` in practice; saturate rather than wrap.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
