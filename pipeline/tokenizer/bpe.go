package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// GPT-2's byte-level alphabet: every byte is written as one printable
// character. Bytes '!'..'~', '¡'..'¬' and '®'..'ÿ' stand for themselves;
// the others, in increasing order, become U+0100, U+0101, ...
var (
	byteToRune [256]rune
	runeToByte = make(map[rune]byte, 256)
	// byteChar[b] is byteToRune[b] in UTF-8.
	byteChar [256]string
)

func init() {
	next := rune(256)
	for b := range 256 {
		r := rune(b)
		if !('!' <= b && b <= '~' || 0xA1 <= b && b <= 0xAC || 0xAE <= b && b <= 0xFF) {
			r = next
			next++
		}
		byteToRune[b] = r
		runeToByte[r] = byte(b)
		byteChar[b] = string(r)
	}
}

// appendByteDecoded appends the bytes that the byte-level text s stands
// for. Like llama.cpp's llama_decode_text, a character outside the
// alphabet is written as "[UNK_BYTE_0x<its UTF-8 in hex><s>]".
func appendByteDecoded(dst []byte, s string) []byte {
	for _, r := range decodeCpts(s, nil) {
		if b, ok := runeToByte[r]; ok {
			dst = append(dst, b)
			continue
		}
		dst = append(dst, "[UNK_BYTE_0x"...)
		for _, c := range appendCpt(nil, r) {
			dst = fmt.Appendf(dst, "%02x", c)
		}
		dst = append(dst, s...)
		dst = append(dst, ']')
	}
	return dst
}

// bpeModel is the merge table of a gpt2 vocabulary. Strings taking part in
// merges are interned as symbols: a vocabulary string is its token id
// (the canonical one of duplicates); any other string gets an id from
// nVocab up.
type bpeModel struct {
	nVocab int
	extra  []string         // string of symbol nVocab+i
	merges map[uint64]merge // key: left<<32 | right
	// byteSym[b] is the symbol of byteChar[b], -1 when no token or merge
	// has that string.
	byteSym [256]int32
	// byteTok[b] is the token whose text is the single byte b, -1 when
	// none (llama.cpp's last resort for a symbol that is not a token).
	byteTok [256]int32
}

type merge struct {
	rank   int32
	result int32 // symbol of left+right
}

func newBPEModel(toID map[string]int, nVocab int, merges []string) (*bpeModel, error) {
	m := &bpeModel{nVocab: nVocab, merges: make(map[uint64]merge, len(merges))}
	extraID := make(map[string]int32)
	intern := func(s string) int32 {
		if id, ok := toID[s]; ok {
			return int32(id)
		}
		if id, ok := extraID[s]; ok {
			return id
		}
		id := int32(nVocab + len(m.extra))
		m.extra = append(m.extra, s)
		extraID[s] = id
		return id
	}
	for i, s := range merges {
		// llama.cpp splits at the first space after the first byte.
		sp := -1
		if len(s) > 1 {
			sp = strings.IndexByte(s[1:], ' ')
		}
		if sp < 0 {
			return nil, fmt.Errorf("tokenizer: merge %d %q has no separating space: %w", i, s, ErrInvalid)
		}
		left, right := s[:sp+1], s[sp+2:]
		key := uint64(intern(left))<<32 | uint64(intern(right))
		if _, dup := m.merges[key]; dup {
			continue // the first rank wins, as in llama.cpp
		}
		m.merges[key] = merge{rank: int32(i), result: intern(left + right)}
	}
	for b := range 256 {
		m.byteSym[b] = -1
		if id, ok := toID[byteChar[b]]; ok {
			m.byteSym[b] = int32(id)
		} else if id, ok := extraID[byteChar[b]]; ok {
			m.byteSym[b] = id
		}
		m.byteTok[b] = -1
		if id, ok := toID[string([]byte{byte(b)})]; ok {
			m.byteTok[b] = int32(id)
		}
	}
	return m, nil
}

// bpeSymbol is one symbol of a word being merged: word bytes
// [start, start+n), n == 0 once merged into its left neighbour.
type bpeSymbol struct {
	sym        int32 // -1: a byte whose character is no symbol
	prev, next int32
	start, n   int32
}

// bpeState is the scratch space of one Encode call.
type bpeState struct {
	cpts  []rune
	word  []byte
	syms  []bpeSymbol
	queue []bigram
	spans []span
	tmp   []span
}

// encodeBPE appends the tokens of raw text (no special tokens) to out.
func (t *Tokenizer) encodeBPE(st *bpeState, text string, out []int) []int {
	st.cpts = decodeCpts(text, st.cpts[:0])
	st.spans = t.pre.split(st.cpts, st.spans[:0], &st.tmp)
	for _, sp := range st.spans {
		st.word = st.word[:0]
		for _, r := range st.cpts[sp.lo:sp.hi] {
			st.word = appendCpt(st.word, r)
		}
		out = t.mergeWord(st, out)
	}
	return out
}

// mergeWord appends the tokens of the pre-token st.word (raw UTF-8 bytes;
// each byte is one byte-level character).
func (t *Tokenizer) mergeWord(st *bpeState, out []int) []int {
	m := t.bpe
	w := st.word
	if t.ignoreMerges {
		if id, ok := t.wordToken(w); ok {
			return append(out, id)
		}
	}
	syms := st.syms[:0]
	for i, b := range w {
		syms = append(syms, bpeSymbol{sym: m.byteSym[b], prev: int32(i - 1), next: int32(i + 1), start: int32(i), n: 1})
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}
	st.syms = syms
	q := st.queue[:0]
	push := func(l, r int32) {
		if l < 0 || r < 0 {
			return
		}
		ls, rs := syms[l].sym, syms[r].sym
		if ls < 0 || rs < 0 {
			return
		}
		mg, ok := m.merges[uint64(ls)<<32|uint64(rs)]
		if !ok {
			return
		}
		// Lowest rank first, then leftmost.
		q = heapPush(q, bigram{key: uint64(mg.rank)<<32 | uint64(l), left: l, right: r, a: ls, b: rs, c: mg.result})
	}
	for i := 1; i < len(syms); i++ {
		push(int32(i-1), int32(i))
	}
	for len(q) > 0 {
		var bg bigram
		bg, q = heapPop(q)
		l, r := &syms[bg.left], &syms[bg.right]
		if l.n == 0 || r.n == 0 || l.sym != bg.a || r.sym != bg.b {
			continue // stale
		}
		l.n += r.n
		l.sym = bg.c
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = bg.left
		}
		push(l.prev, bg.left)
		push(bg.left, l.next)
	}
	st.queue = q
	for i := int32(0); len(syms) > 0 && i != -1; i = syms[i].next {
		s := syms[i]
		if s.sym >= 0 && int(s.sym) < m.nVocab {
			out = append(out, int(s.sym))
			continue
		}
		// Not a token: llama.cpp emits the tokens of the single bytes of
		// the symbol's byte-level text, where there are such tokens.
		var txt string
		if s.sym < 0 {
			txt = byteChar[w[s.start]]
		} else {
			txt = m.extra[int(s.sym)-m.nVocab]
		}
		for j := 0; j < len(txt); j++ {
			if id := m.byteTok[txt[j]]; id >= 0 {
				out = append(out, int(id))
			}
		}
	}
	return out
}

// wordToken looks up the byte-level form of the raw word w as one token.
func (t *Tokenizer) wordToken(w []byte) (int, bool) {
	var buf [64]byte
	enc := buf[:0]
	for _, b := range w {
		enc = utf8.AppendRune(enc, byteToRune[b])
	}
	id, ok := t.toID[string(enc)]
	return id, ok
}

// bigram is a queued merge of symbols left and right. Queues pop the
// lowest key first; the key puts the merge priority in its high 32 bits and
// left in its low ones, so ties go to the leftmost pair.
type bigram struct {
	key         uint64
	left, right int32
	a, b        int32 // per tokenizer: the symbols merged (BPE), or the merged size (SPM)
	c           int32 // BPE: the symbol of the result
}

// heapPush and heapPop keep q a binary min-heap by key.
func heapPush(q []bigram, x bigram) []bigram {
	q = append(q, x)
	i := len(q) - 1
	for i > 0 {
		p := (i - 1) / 2
		if q[i].key >= q[p].key {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
	return q
}

func heapPop(q []bigram) (bigram, []bigram) {
	top := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q = q[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && q[r].key < q[l].key {
			c = r
		}
		if q[c].key >= q[i].key {
			break
		}
		q[i], q[c] = q[c], q[i]
		i = c
	}
	return top, q
}
