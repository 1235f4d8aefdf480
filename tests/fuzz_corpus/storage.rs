//! The `storage_message` target's hand-made seeds and what each must decode to (docs/wire.md
//! §12F): every message kind, valid, and the variants a hostile peer sends — a block that does
//! not match its id, a forged receipt, lengths over their limits, unknown versions and tags.

use netmachine::identity::{DomainIdentity, NodeIdentity, TopicIdentity};
use netmachine::storage::block::{Block, BlockId, VerifiedBlock};
use netmachine::storage::receipt::ChunkCommitment;
use netmachine::storage::wire::{
    Found, GetAnswer, Refusal, Search, SearchScope, StorageMessage, MAX_HOLDERS, MAX_PATH,
    MAX_REASON,
};
use netmachine::time::Timestamp;
use netmachine::wire::encode_to_vec;

use super::{flipped, key, truncated, with_byte, with_u64};

/// The time receipts are checked at: before every seed receipt's `until`.
const NOW: Timestamp = Timestamp(1_700_000_000_000);

/// The seeds, `(name, bytes)`; names starting with `valid-` are valid encodings.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let leaf = Block::Leaf(b"hello".to_vec()).encode();
    let id = BlockId::of(&leaf);
    let holder = key(2);
    let receipt = ChunkCommitment::sign(&holder, id, Timestamp(NOW.0 + 86_400_000));
    let a = key(1).node_identity();
    let b = holder.node_identity();
    let msg = |m: StorageMessage| m.to_bytes();
    let found = msg(StorageMessage::Found(Found {
        search: 7,
        origin: a,
        id,
        holder: b,
        holder_advert: None,
        path: vec![b, a],
        min_trust: 0,
        bytes: leaf.clone(),
    }));
    let put_reply = msg(StorageMessage::PutReply {
        id,
        result: Ok(receipt),
    });
    let put = msg(StorageMessage::Put {
        bytes: leaf.clone(),
        until: receipt.until,
        min_trust: 3,
    });
    let search = |scope, path: Vec<NodeIdentity>| {
        msg(StorageMessage::Search(Search {
            search: 7,
            id,
            scope,
            ttl: 5,
            path,
        }))
    };
    let head = encode_to_vec(&(1u32, 1u32, id));
    let mut holders_over = head.clone();
    holders_over.extend(encode_to_vec(&(1u32, (MAX_HOLDERS + 1) as u64)));
    holders_over.extend(encode_to_vec(&receipt).repeat(MAX_HOLDERS + 1));
    let n = found.len();
    vec![
        ("valid-get", msg(StorageMessage::Get { id, holders: true })),
        (
            "valid-get-reply-block",
            msg(StorageMessage::GetReply {
                id,
                answer: GetAnswer::Block(leaf.clone()),
            }),
        ),
        (
            "valid-get-reply-holders",
            msg(StorageMessage::GetReply {
                id,
                answer: GetAnswer::Holders(vec![receipt]),
            }),
        ),
        (
            "valid-get-reply-not-found",
            msg(StorageMessage::GetReply {
                id,
                answer: GetAnswer::NotFound,
            }),
        ),
        (
            "valid-get-reply-refused",
            msg(StorageMessage::GetReply {
                id,
                answer: GetAnswer::Refused(Refusal::Trust, "trust 10 is below 200".into()),
            }),
        ),
        ("valid-put", put.clone()),
        (
            "valid-extend",
            msg(StorageMessage::Extend {
                id,
                until: receipt.until,
            }),
        ),
        ("valid-put-reply", put_reply.clone()),
        (
            "valid-put-reply-refused",
            msg(StorageMessage::PutReply {
                id,
                result: Err((Refusal::Full, "store full".into())),
            }),
        ),
        (
            "valid-search-random",
            search(SearchScope::Random(Some(DomainIdentity([4; 32]))), vec![a]),
        ),
        (
            "valid-search-topic",
            search(SearchScope::Topic(TopicIdentity([3; 32])), vec![a, b]),
        ),
        ("valid-found", found.clone()),
        // The block's last data byte changed on the way: it decodes, but no longer matches.
        ("found-flipped-block", flipped(&found, n - 1, 1)),
        // The receipt's last signature byte changed: it decodes, but does not verify.
        (
            "put-reply-flipped-receipt",
            flipped(&put_reply, put_reply.len() - 1, 1),
        ),
        ("truncated-found", truncated(&found, n - 3)),
        ("unknown-version", with_byte(&put, 0, 2)),
        ("unknown-tag", encode_to_vec(&(1u32, 7u32))),
        ("get-bad-bool", {
            let mut g = msg(StorageMessage::Get { id, holders: true });
            *g.last_mut().expect("a byte") = 2;
            g
        }),
        // Put: version 4, tag 4, then the block's u64 length.
        ("put-forged-length", with_u64(&put, 8, u64::MAX)),
        (
            "search-path-over-limit",
            search(SearchScope::Random(None), vec![a; MAX_PATH + 1]),
        ),
        ("holders-over-limit", holders_over),
        (
            "refusal-text-over-limit",
            msg(StorageMessage::PutReply {
                id,
                result: Err((Refusal::Rate, "x".repeat(MAX_REASON + 1))),
            }),
        ),
    ]
}

/// What the decoder and a receiver's checks make of `data`.
pub fn outcome(data: &[u8]) -> String {
    let block = |id: BlockId, bytes: &[u8]| match VerifiedBlock::check(id, bytes) {
        Ok(_) => ", block verifies".to_string(),
        Err(e) => format!(", block refused ({e})"),
    };
    let receipt = |c: &ChunkCommitment| match c.check(NOW) {
        Ok(_) => ", receipt verifies".to_string(),
        Err(e) => format!(", receipt refused ({e})"),
    };
    match StorageMessage::from_bytes(data) {
        Ok(m) => {
            let checks = match &m {
                StorageMessage::GetReply {
                    id,
                    answer: GetAnswer::Block(b),
                } => block(*id, b),
                StorageMessage::GetReply {
                    answer: GetAnswer::Holders(h),
                    ..
                } => h.iter().map(receipt).collect(),
                StorageMessage::Put { bytes, .. } => block(BlockId::of(bytes), bytes),
                StorageMessage::PutReply { result: Ok(c), .. } => receipt(c),
                StorageMessage::Found(f) => block(f.id, &f.bytes),
                _ => String::new(),
            };
            format!("decodes as {}{checks}", m.kind())
        }
        Err(e) => format!("{e:?}"),
    }
}

/// A part of [`outcome`] the seed called `name` must produce.
pub fn expected(name: &str) -> &'static str {
    match name {
        "valid-get-reply-block" | "valid-put" | "valid-found" => "block verifies",
        "valid-get-reply-holders" | "valid-put-reply" => "receipt verifies",
        "found-flipped-block" => "block refused",
        "put-reply-flipped-receipt" => "receipt refused",
        "truncated-found" => "Truncated",
        "unknown-version" => "UnknownVersion(2)",
        "unknown-tag" => "StorageMessage: tag 7",
        "get-bad-bool" => "BadTag",
        "put-forged-length" => {
            "TooLarge { what: \"value\", len: 18446744073709551615, max: 1048581"
        }
        "search-path-over-limit" => "TooLarge { what: \"value\", len: 256, max: 255",
        "holders-over-limit" => "TooLarge { what: \"value\", len: 17, max: 16",
        "refusal-text-over-limit" => "TooLarge { what: \"reason\", len: 257",
        n if n.starts_with("valid-") => "decodes as",
        other => panic!("storage_message: seed {other} has no expected outcome"),
    }
}
