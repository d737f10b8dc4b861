// Byte writer/reader, CRC-32 and atomic file writes used by model and index files.
#include "imgsim/nn/serialize.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "imgsim/error.hpp"

namespace imgsim::nn {

void ByteWriter::bytes(const void* p, std::size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  buf_.insert(buf_.end(), b, b + n);
}
void ByteWriter::u8(uint8_t v) {
  buf_.push_back(v);
}
void ByteWriter::u32(uint32_t v) {
  bytes(&v, 4);
}  // x86-64 is little-endian
void ByteWriter::u64(uint64_t v) {
  bytes(&v, 8);
}
void ByteWriter::i64(int64_t v) {
  bytes(&v, 8);
}
void ByteWriter::f32(float v) {
  bytes(&v, 4);
}
void ByteWriter::f64(double v) {
  bytes(&v, 8);
}
void ByteWriter::str(const std::string& s) {
  u32(static_cast<uint32_t>(s.size()));
  bytes(s.data(), s.size());
}
void ByteWriter::shape(const Shape& s) {
  u32(static_cast<uint32_t>(s.rank()));
  for (int64_t d : s) i64(d);
}
void ByteWriter::tensor(const Tensor& t) {
  shape(t.shape());
  bytes(t.data(), static_cast<std::size_t>(t.numel()) * sizeof(float));
}

void ByteWriter::rng_state(const Rng::State& st) {
  for (uint64_t v : st.s) u64(v);
  u8(st.has_spare ? 1 : 0);
  f32(st.spare);
}

ByteReader::ByteReader(const uint8_t* data, std::size_t size, std::string what)
    : data_(data), size_(size), what_(std::move(what)) {}

void ByteReader::fail(const std::string& msg) const {
  throw FormatError(what_ + ": " + msg);
}

void ByteReader::need(std::size_t n, const char* field) {
  if (n > size_ - pos_)
    fail(std::string("truncated: ") + field + " needs " + std::to_string(n) + " bytes at offset " +
         std::to_string(pos_) + ", only " + std::to_string(size_ - pos_) + " left");
}

void ByteReader::bytes(void* p, std::size_t n, const char* field) {
  need(n, field);
  if (n) std::memcpy(p, data_ + pos_, n);
  pos_ += n;
}
uint8_t ByteReader::u8(const char* f) {
  uint8_t v;
  bytes(&v, 1, f);
  return v;
}
uint32_t ByteReader::u32(const char* f) {
  uint32_t v;
  bytes(&v, 4, f);
  return v;
}
uint64_t ByteReader::u64(const char* f) {
  uint64_t v;
  bytes(&v, 8, f);
  return v;
}
int64_t ByteReader::i64(const char* f) {
  int64_t v;
  bytes(&v, 8, f);
  return v;
}
float ByteReader::f32(const char* f) {
  float v;
  bytes(&v, 4, f);
  return v;
}
double ByteReader::f64(const char* f) {
  double v;
  bytes(&v, 8, f);
  return v;
}
std::string ByteReader::str(const char* f) {
  uint32_t n = u32(f);
  need(n, f);
  std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
  pos_ += n;
  return s;
}
Shape ByteReader::shape(const char* f) {
  uint32_t rank = u32(f);
  if (rank > static_cast<uint32_t>(Shape::kMaxRank))
    fail(std::string(f) + ": rank " + std::to_string(rank) + " exceeds " +
         std::to_string(Shape::kMaxRank));
  Shape s;
  switch (rank) {
    case 0:
      s = Shape{};
      break;
    case 1:
      s = Shape{0};
      break;
    case 2:
      s = Shape{0, 0};
      break;
    case 3:
      s = Shape{0, 0, 0};
      break;
    case 4:
      s = Shape{0, 0, 0, 0};
      break;
    case 5:
      s = Shape{0, 0, 0, 0, 0};
      break;
    default:
      s = Shape{0, 0, 0, 0, 0, 0};
      break;
  }
  int64_t total = 1;
  for (uint32_t i = 0; i < rank; ++i) {
    int64_t d = i64(f);
    if (d < 0 || d > (int64_t{1} << 32))
      fail(std::string(f) + ": dimension " + std::to_string(d) + " out of range");
    total *= d;
    if (total > (int64_t{1} << 34)) fail(std::string(f) + ": shape too large");
    s[static_cast<int>(i)] = d;
  }
  return s;
}
void ByteReader::tensor_into(Tensor& t, const char* f) {
  Shape s = shape(f);
  if (s != t.shape())
    fail(std::string(f) + ": expected shape " + t.shape().str() + ", found " + s.str());
  bytes(t.data(), static_cast<std::size_t>(t.numel()) * sizeof(float), f);
}

Rng::State ByteReader::rng_state(const char* f) {
  Rng::State st;
  for (uint64_t& v : st.s) v = u64(f);
  st.has_spare = u8(f) != 0;
  st.spare = f32(f);
  if ((st.s[0] | st.s[1] | st.s[2] | st.s[3]) == 0) fail(std::string(f) + ": all-zero state");
  return st;
}

uint32_t crc32(const uint8_t* data, std::size_t n) {
  uLong c = ::crc32(0L, Z_NULL, 0);
  while (n > 0) {
    uInt chunk = n > (1u << 30) ? (1u << 30) : static_cast<uInt>(n);
    c = ::crc32(c, data, chunk);
    data += chunk;
    n -= chunk;
  }
  return static_cast<uint32_t>(c);
}

void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes) {
  // mkstemp creates a unique file with O_EXCL, so concurrent writers never share a temporary.
  std::string tmp = path + ".tmp-XXXXXX";
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) throw IoError("cannot write '" + path + "': " + std::strerror(errno));
  ::fchmod(fd, 0644);
  std::size_t off = 0;
  while (off < bytes.size()) {
    ssize_t w = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw IoError("cannot write '" + path + "': " + std::strerror(e));
    }
    off += static_cast<std::size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw IoError("cannot write '" + path + "': " + std::strerror(e));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw IoError("cannot rename temporary file to '" + path + "': " + std::strerror(e));
  }
}

std::vector<uint8_t> read_file(const std::string& path, std::size_t max_bytes) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw IoError("cannot open '" + path + "': " + std::strerror(errno));
  std::streamoff size = f.tellg();
  if (size < 0) throw IoError("cannot read '" + path + "'");
  if (static_cast<std::size_t>(size) > max_bytes)
    throw FormatError("'" + path + "' is " + std::to_string(size) + " bytes, more than the limit " +
                      std::to_string(max_bytes));
  std::vector<uint8_t> buf(static_cast<std::size_t>(size));
  f.seekg(0);
  if (size > 0 && !f.read(reinterpret_cast<char*>(buf.data()), size))
    throw IoError("cannot read '" + path + "': " + std::strerror(errno));
  return buf;
}

}  // namespace imgsim::nn
