// Reader for the PyTorch parity fixtures written by tools/gen_fixtures.py (docs/testing.md,
// "PyTorch parity"). All integers are little-endian:
//
//   8 bytes  magic "IMGSIMFX"
//   u32      version (1)
//   u32      number of tensors T
//   T times: u32 name length L (1..255), L bytes of name,
//            u32 rank R (0..6), R x i64 dimensions (>= 0), numel x float32 values (row-major)
//   u64      FNV-1a 64-bit hash of every byte before it
//
// Any deviation (bad magic or version, truncated record, trailing bytes, duplicate name,
// hash mismatch) throws imgsim::FormatError; a missing file throws imgsim::IoError.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "imgsim/error.hpp"
#include "imgsim/tensor.hpp"

namespace imgsim::testing {

static_assert(std::endian::native == std::endian::little, "fixtures are little-endian");

class Fixture {
 public:
  static constexpr char kMagic[8] = {'I', 'M', 'G', 'S', 'I', 'M', 'F', 'X'};
  static constexpr uint32_t kVersion = 1;

  static uint64_t fnv1a64(const unsigned char* p, std::size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
  }

  // Parses a whole fixture held in memory; `what` names it in error messages.
  static Fixture parse(const std::vector<unsigned char>& bytes, const std::string& what) {
    Fixture f;
    f.name_ = what;
    std::size_t pos = 0;
    auto fail = [&](const std::string& msg) {
      throw FormatError("fixture " + what + ": " + msg + " (at byte " + std::to_string(pos) + ")");
    };
    auto need = [&](std::size_t n) {
      if (n > bytes.size() - pos) fail("truncated");
    };
    auto u32 = [&] {
      need(4);
      uint32_t v;
      std::memcpy(&v, bytes.data() + pos, 4);
      pos += 4;
      return v;
    };
    auto i64 = [&] {
      need(8);
      int64_t v;
      std::memcpy(&v, bytes.data() + pos, 8);
      pos += 8;
      return v;
    };

    if (bytes.size() < sizeof kMagic + 8 + 8) fail("file too short");
    if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) fail("bad magic");
    const std::size_t body = bytes.size() - 8;
    uint64_t stored;
    std::memcpy(&stored, bytes.data() + body, 8);
    if (stored != fnv1a64(bytes.data(), body)) fail("hash mismatch (corrupt file)");
    pos = sizeof kMagic;
    const uint32_t version = u32();
    if (version != kVersion)
      fail("version " + std::to_string(version) + ", expected " + std::to_string(kVersion));
    const uint32_t count = u32();
    for (uint32_t t = 0; t < count; ++t) {
      const uint32_t len = u32();
      if (len == 0 || len > 255) fail("bad name length " + std::to_string(len));
      need(len);
      std::string name(reinterpret_cast<const char*>(bytes.data() + pos), len);
      pos += len;
      const uint32_t rank = u32();
      if (rank > static_cast<uint32_t>(Shape::kMaxRank))
        fail(name + ": rank " + std::to_string(rank) + " too large");
      Shape shape;  // rank 0; dimensions are prepended from the last one
      std::vector<int64_t> dims(rank);
      int64_t numel = 1;
      for (auto& dim : dims) {
        dim = i64();
        if (dim < 0 || dim > (int64_t{1} << 28)) fail(name + ": bad dimension");
        numel *= dim;
        if (numel > (int64_t{1} << 28)) fail(name + ": too many elements");
      }
      for (uint32_t i = rank; i-- > 0;) shape = shape.with_batch(dims[i]);
      need(static_cast<std::size_t>(numel) * 4);
      Tensor tensor(shape);
      std::memcpy(tensor.data(), bytes.data() + pos, static_cast<std::size_t>(numel) * 4);
      pos += static_cast<std::size_t>(numel) * 4;
      if (!f.tensors_.emplace(name, std::move(tensor)).second) fail("duplicate tensor " + name);
      f.order_.push_back(name);
    }
    if (pos != body) fail("trailing bytes after the last tensor");
    return f;
  }

  // Loads tests/fixtures/<name>.bin (IMGSIM_FIXTURE_DIR).
  static Fixture load(const std::string& name) {
    const std::string path = std::string(IMGSIM_FIXTURE_DIR) + "/" + name + ".bin";
    std::ifstream in(path, std::ios::binary);
    if (!in) throw IoError("cannot open fixture " + path);
    std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)),
                                     std::istreambuf_iterator<char>());
    if (in.bad()) throw IoError("cannot read fixture " + path);
    return parse(bytes, name);
  }

  bool has(const std::string& tensor) const { return tensors_.count(tensor) != 0; }
  const Tensor& operator[](const std::string& tensor) const {
    auto it = tensors_.find(tensor);
    if (it == tensors_.end())
      throw FormatError("fixture " + name_ + ": no tensor named '" + tensor + "'");
    return it->second;
  }
  // Names in file order.
  const std::vector<std::string>& names() const { return order_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::map<std::string, Tensor> tensors_;
  std::vector<std::string> order_;
};

}  // namespace imgsim::testing
