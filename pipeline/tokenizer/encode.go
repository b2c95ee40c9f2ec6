package tokenizer

import (
	"math"
	"strings"
	"sync"
)

// Encode returns the token ids of text, in a new slice owned by the caller.
//
// addSpecial adds BOS and/or EOS as the vocabulary asks (AddBOS, AddEOS).
// parseSpecial makes the texts of control and unknown tokens in text
// ("<|im_start|>", "<s>") stand for their ids; without it they are plain
// text. The texts of user-defined tokens always stand for their ids, as in
// llama.cpp.
//
// Any byte string is accepted and handled as llama.cpp does: "llama"
// vocabularies cut characters by their first byte and spell what is not a
// token with byte tokens; gpt2 vocabularies read each invalid byte as
// U+FFFD. Valid UTF-8 survives Decode(Encode(s, false, false)) when the
// vocabulary has byte tokens (or is byte-level) and s holds no user-defined
// token text ("llama" puts a dummy-prefix space after each).
func (t *Tokenizer) Encode(text string, addSpecial, parseSpecial bool) []int {
	st := statePool.Get().(*encodeState)
	defer statePool.Put(st)

	out := make([]int, 0, len(text)/4+2)
	if addSpecial && t.addBOS {
		out = append(out, t.bos)
	}
	frags := st.frags[:0]
	if text != "" {
		frags = t.partition(text, parseSpecial, append(frags, fragment{id: -1, lo: 0, hi: len(text)}), &st.fragTmp)
	}
	st.frags = frags
	prevSpecial := true // the dummy prefix goes at the start and after special tokens
	for _, f := range frags {
		if f.id >= 0 {
			out = append(out, f.id)
			prevSpecial = true
			continue
		}
		raw := text[f.lo:f.hi]
		if t.spm {
			out = t.encodeSPM(&st.spm, raw, t.addSpacePrefix && prevSpecial, out)
		} else {
			out = t.encodeBPE(&st.bpe, raw, out)
		}
		prevSpecial = false
	}
	if addSpecial && t.addEOS {
		out = append(out, t.eos)
	}
	return out
}

// encodeState is the scratch space of one Encode call, pooled.
type encodeState struct {
	frags, fragTmp []fragment
	spm            spmState
	bpe            bpeState
}

var statePool = sync.Pool{New: func() any { return new(encodeState) }}

// fragment is a token (id >= 0) or the raw text [lo, hi) (id < 0).
type fragment struct {
	id     int
	lo, hi int
}

// partition splits the raw fragments of frags at the texts of special
// tokens, longest first, as llama.cpp's tokenizer_st_partition does.
// Control and unknown tokens take part only with parseSpecial.
func (t *Tokenizer) partition(text string, parseSpecial bool, frags []fragment, tmp *[]fragment) []fragment {
	for _, id := range t.specials {
		typ := t.types[id]
		if !parseSpecial && (typ == TypeControl || typ == TypeUnknown) {
			continue
		}
		s := t.tokens[id]
		if !strings.Contains(text, s) {
			continue
		}
		next := (*tmp)[:0]
		for _, f := range frags {
			if f.id >= 0 {
				next = append(next, f)
				continue
			}
			lo := f.lo
			for lo < f.hi {
				i := strings.Index(text[lo:f.hi], s)
				if i < 0 {
					break
				}
				if i > 0 {
					next = append(next, fragment{id: -1, lo: lo, hi: lo + i})
				}
				next = append(next, fragment{id: id})
				lo += i + len(s)
			}
			if lo < f.hi {
				next = append(next, fragment{id: -1, lo: lo, hi: f.hi})
			}
		}
		*tmp, frags = frags, next
	}
	return frags
}

// spmSymbol is one symbol of the text being merged: bytes [start, start+n),
// n == 0 once merged into its left neighbour.
type spmSymbol struct {
	prev, next int32
	start, n   int32
}

type spmState struct {
	text  []byte
	syms  []spmSymbol
	queue []bigram
}

// encodeSPM appends the tokens of raw text to out: spaces become "▁", with
// one prepended when prefix is set, then llama.cpp's SentencePiece merge.
func (t *Tokenizer) encodeSPM(st *spmState, raw string, prefix bool, out []int) []int {
	b := st.text[:0]
	if prefix {
		b = append(b, "▁"...)
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] == ' ' {
			b = append(b, "▁"...)
		} else {
			b = append(b, raw[i])
		}
	}
	st.text = b

	// Split into UTF-8 characters by their first byte, as llama.cpp does
	// (an invalid sequence is cut the same way).
	syms := st.syms[:0]
	for i := 0; i < len(b); {
		n := min(utf8Len(b[i]), len(b)-i)
		syms = append(syms, spmSymbol{prev: int32(len(syms) - 1), next: int32(len(syms) + 1), start: int32(i), n: int32(n)})
		i += n
	}
	if len(syms) == 0 {
		return out
	}
	syms[len(syms)-1].next = -1

	q := st.queue[:0]
	for i := 1; i < len(syms); i++ {
		q = t.spmPush(q, b, syms, int32(i-1), int32(i))
	}
	for len(q) > 0 {
		var bg bigram
		bg, q = heapPop(q)
		l, r := &syms[bg.left], &syms[bg.right]
		if l.n == 0 || r.n == 0 || l.n+r.n != bg.a {
			continue // stale
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = bg.left
		}
		q = t.spmPush(q, b, syms, l.prev, bg.left)
		q = t.spmPush(q, b, syms, bg.left, l.next)
	}
	st.syms, st.queue = syms, q

	for i := int32(0); i != -1; i = syms[i].next {
		s := syms[i]
		piece := b[s.start : s.start+s.n]
		if id, ok := t.toID[string(piece)]; ok {
			out = append(out, id)
			continue
		}
		for _, c := range piece {
			if id := t.byteToken[c]; id >= 0 {
				out = append(out, id)
			}
		}
	}
	return out
}

// spmPush queues the merge of symbols l and r when their concatenation is a
// token.
func (t *Tokenizer) spmPush(q []bigram, b []byte, syms []spmSymbol, l, r int32) []bigram {
	if l < 0 || r < 0 {
		return q
	}
	size := syms[l].n + syms[r].n
	id, ok := t.toID[string(b[syms[l].start:syms[l].start+size])]
	if !ok {
		return q
	}
	// Highest score first, then leftmost.
	return heapPush(q, bigram{key: uint64(t.scoreKeys[id])<<32 | uint64(l), left: l, right: r, a: size})
}

// scoreKey maps scores to integers in decreasing order of score: the
// highest score gets the lowest key. -0 and +0 are equal, as in float
// comparison.
func scoreKey(f float32) uint32 {
	if f == 0 {
		f = 0
	}
	b := math.Float32bits(f)
	if b>>31 != 0 {
		b = ^b
	} else {
		b |= 1 << 31
	}
	return ^b
}

// utf8Len is the length of a UTF-8 sequence by its first byte, as
// llama.cpp's unicode_len_utf8 reads it (1 for a continuation byte).
func utf8Len(c byte) int {
	switch {
	case c < 0xC0:
		return 1
	case c < 0xE0:
		return 2
	case c < 0xF0:
		return 3
	}
	return 4
}
