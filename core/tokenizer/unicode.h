// UTF-8 and Unicode helpers shared by the tokenizer components: code point iteration,
// lossy decoding with Rust's String::from_utf8_lossy rules, the GPT-2 byte<->char map,
// character classes as Rust defines them, and normalization forms via utf8proc.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace archlens::unicode {

// Decodes the code point starting at text[pos] (text must be valid UTF-8) and returns its
// byte length through len.
char32_t decodeAt(std::string_view text, size_t pos, size_t* len);
size_t charLength(unsigned char leadByte);
void appendUtf8(std::string& out, char32_t cp);
std::string toUtf8(char32_t cp);

// Offset of the first invalid byte, or npos when text is valid UTF-8.
size_t findInvalidUtf8(std::string_view text);
// Invalid sequences become U+FFFD, one per maximal invalid subpart (Rust from_utf8_lossy).
std::string decodeLossy(std::string_view bytes);

// Rust char::is_whitespace (Unicode White_Space).
bool isWhitespace(char32_t cp);
// Rust regex \w: Alphabetic, marks, decimal digits, connector punctuation, joiners.
bool isWordChar(char32_t cp);
// Rust char::is_numeric: Nd, Nl, No.
bool isNumeric(char32_t cp);
bool isCombiningMark(char32_t cp);
// Rust char::to_lowercase, appended as UTF-8.
void appendLowercase(std::string& out, char32_t cp);

enum class NormalForm { NFC, NFD, NFKC, NFKD };
std::string normalize(std::string_view text, NormalForm form);

// GPT-2 byte-level alphabet: every byte maps to one printable code point.
const std::array<char32_t, 256>& byteToChar();
// Reverse map; -1 for code points outside the alphabet.
int charToByte(char32_t cp);
std::string bytesToByteLevel(std::string_view bytes);

} // namespace archlens::unicode
