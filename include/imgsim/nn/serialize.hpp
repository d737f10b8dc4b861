// Byte-level writer and reader used by model files (docs/file-format.md).
// Little-endian, fixed-width. The reader checks every length against what is left and throws
// FormatError naming what it expected, so a truncated or hostile file never over-reads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "imgsim/rng.hpp"
#include "imgsim/tensor.hpp"

namespace imgsim::nn {

class ByteWriter {
 public:
  void u8(uint8_t v);
  void u32(uint32_t v);
  void u64(uint64_t v);
  void i64(int64_t v);
  void f32(float v);
  void f64(double v);
  void str(const std::string& s);
  void shape(const Shape& s);
  // Shape followed by the raw floats.
  void tensor(const Tensor& t);
  // A generator's state: 4 u64, u8 spare flag, f32 spare.
  void rng_state(const Rng::State& st);
  void bytes(const void* p, std::size_t n);
  const std::vector<uint8_t>& buffer() const { return buf_; }
  std::vector<uint8_t>& buffer() { return buf_; }

 private:
  std::vector<uint8_t> buf_;
};

class ByteReader {
 public:
  // `what` names the thing being read, for error messages ("model file 'a.imgsim'").
  ByteReader(const uint8_t* data, std::size_t size, std::string what);
  uint8_t u8(const char* field);
  uint32_t u32(const char* field);
  uint64_t u64(const char* field);
  int64_t i64(const char* field);
  float f32(const char* field);
  double f64(const char* field);
  std::string str(const char* field);
  Shape shape(const char* field);
  // Reads a tensor and checks that its shape equals `expected`.
  void tensor_into(Tensor& t, const char* field);
  // What ByteWriter::rng_state wrote; fails on the all-zero state.
  Rng::State rng_state(const char* field);
  void bytes(void* p, std::size_t n, const char* field);
  std::size_t remaining() const { return size_ - pos_; }
  std::size_t position() const { return pos_; }
  const std::string& what() const { return what_; }
  // Throws FormatError("<what>: <msg>").
  [[noreturn]] void fail(const std::string& msg) const;

 private:
  void need(std::size_t n, const char* field);
  const uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
  std::string what_;
};

// CRC-32 (zlib polynomial) of a byte range.
uint32_t crc32(const uint8_t* data, std::size_t n);

// Writes `bytes` to `path` atomically: to "<path>.tmp-XXXX" in the same folder, flushed and
// fsync'ed, then renamed over `path`. On any failure the temporary is removed, `path` is left as
// it was, and IoError names the path and the OS error.
void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes);
// Reads a whole file; IoError if it cannot. Refuses files larger than `max_bytes`.
std::vector<uint8_t> read_file(const std::string& path,
                               std::size_t max_bytes = std::size_t{1} << 32);

}  // namespace imgsim::nn
