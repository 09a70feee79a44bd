"""Numba kernel of the grammar sampler: walk the vocabulary trie under a grammar state.

This module imports only numpy and numba (a kernel module kept next to its one caller, the
grammar sampler). The trie holds every token's code points; a token is allowed when walking its
code points through the grammar's state transitions never dies and its end (with any partial UTF-8
sequence) is accepted, or when a state on the way has a token element on top that matches the
token id (llama_grammar_reject_candidates_for_stack's token case).

Transitions are filled lazily by Python: where the kernel meets an unknown entry it records a miss,
skips that subtree and goes on; the caller resolves the misses and walks again.
"""

from __future__ import annotations

from numba import njit

UNKNOWN = -2
DEAD = -1
TOKEN = 8
TOKEN_NOT = 9


@njit(cache=True, nogil=True)
def grammar_trie_walk(root_state, child_start, child_end, child_cls, child_node,
                      tok_lo, n_end, tok_hi, sorted_tok, sorted_pid,
                      trans, partial_ok, st_tok_start, st_tok_end, tok_type, tok_val,
                      allowed, miss_kind, miss_state, miss_key, stack_node, stack_state):
    """Mark allowed tokens; returns the number of misses recorded (0: the walk was complete).

    child_start, child_end: int32[n_nodes] edge range of each node; child_cls, child_node:
    int32[n_edges] char class and target node of each edge; tok_lo, n_end, tok_hi: int32[n_nodes]
    tokens of a node's subtree in sorted order, the first n_end of them ending at the node;
    sorted_tok, sorted_pid: int32[n_trie_tokens] token id and partial-UTF-8 id (0 = none);
    trans: int32[n_states, n_classes] next state, UNKNOWN or DEAD; partial_ok:
    int8[n_states, n_pid] 1/0 or -1 unknown; st_tok_start, st_tok_end: int32[n_states] range in
    tok_type, tok_val: int32[*] of token elements on top of a state's stacks;
    allowed: uint8[n_vocab] out (set to 1, never cleared here); miss_*: int32[cap] out;
    stack_node, stack_state: int32[n_nodes] scratch (each node is pushed at most once).
    """
    cap = miss_kind.shape[0]
    n_miss = 0
    depth_cap = stack_node.shape[0]
    stack_node[0] = 0
    stack_state[0] = root_state
    sp = 1
    while sp > 0:
        sp -= 1
        node = stack_node[sp]
        st = stack_state[sp]
        lo = tok_lo[node]
        mid = lo + n_end[node]
        for j in range(lo, mid):
            pid = sorted_pid[j]
            if pid == 0:
                allowed[sorted_tok[j]] = 1
            else:
                v = partial_ok[st, pid]
                if v == 1:
                    allowed[sorted_tok[j]] = 1
                elif v < 0:
                    if n_miss < cap:
                        miss_kind[n_miss] = 1
                        miss_state[n_miss] = st
                        miss_key[n_miss] = pid
                    n_miss += 1
        for e in range(st_tok_start[st], st_tok_end[st]):
            tt = tok_type[e]
            tv = tok_val[e]
            for j in range(mid, tok_hi[node]):
                tok = sorted_tok[j]
                if (tt == TOKEN and tok == tv) or (tt == TOKEN_NOT and tok != tv):
                    allowed[tok] = 1
        for c in range(child_start[node], child_end[node]):
            nxt = trans[st, child_cls[c]]
            if nxt >= 0:
                if sp < depth_cap:
                    stack_node[sp] = child_node[c]
                    stack_state[sp] = nxt
                    sp += 1
            elif nxt == UNKNOWN:
                if n_miss < cap:
                    miss_kind[n_miss] = 0
                    miss_state[n_miss] = st
                    miss_key[n_miss] = child_cls[c]
                n_miss += 1
    return n_miss
