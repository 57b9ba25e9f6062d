// Conversation ids: the derived id of a member set, as the gateway derives
// it when a send names no conversation_id, so that a one-to-one chat has
// one id whoever sends and a client can find it before any message.

import { CourierError } from "./errors.js";

/** The prefix of derived ids; the gateway refuses it in a conversation_id a sender gives. */
export const DERIVED_PREFIX = "d.";

/**
 * The derived conversation id of a set of members (the sender included):
 * `"d." + hex(sha256(sorted unique members joined by "\n"))[:32]`.
 * Order and repeats do not matter. Uses WebCrypto (browsers, Node 20+).
 */
export async function conversationId(members: readonly string[]): Promise<string> {
  if (!Array.isArray(members) || members.length === 0 || !members.every((m) => typeof m === "string" && m !== "")) {
    throw new CourierError("invalid_argument", "conversationId: members must be a non-empty array of user ids");
  }
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new CourierError("not_configured", "conversationId: no WebCrypto (crypto.subtle) in this environment");
  // Sorted by their UTF-8 bytes, as Go sorts strings (JavaScript's own sort
  // compares UTF-16 units, which orders some non-ASCII ids differently).
  const enc = new TextEncoder();
  const unique = [...new Set(members)].map((m) => ({ m, b: enc.encode(m) })).sort((x, y) => compareBytes(x.b, y.b));
  const digest = await subtle.digest("SHA-256", enc.encode(unique.map((u) => u.m).join("\n")));
  const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  return DERIVED_PREFIX + hex.slice(0, 32);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return a.length - b.length;
}
