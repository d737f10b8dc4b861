// IDX reader (include/imgsim/data/mnist.hpp). zlib's gz* functions read gzip and raw files
// alike ("transparent" mode), so one code path serves both.
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "imgsim/data/mnist.hpp"
#include "imgsim/error.hpp"

namespace imgsim::data {

namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // ubyte, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // ubyte, 1 dimension
constexpr unsigned kChunk = 1u << 20;

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// Owns a gzFile and turns zlib's error states into imgsim exceptions.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
      throw IoError(path + ": cannot read IDX file: is a directory");
    errno = 0;
    file_ = gzopen(path.c_str(), "rb");
    if (!file_) {
      const int err = errno;
      throw IoError(path +
                    ": cannot open IDX file: " + (err ? std::strerror(err) : "zlib out of memory"));
    }
    gzbuffer(file_, 1u << 17);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;
  ~GzReader() { gzclose_r(file_); }

  // Reads up to `n` bytes, appending to `out`; returns the number read (short only at the end
  // of the data). Throws FormatError on corrupt gzip data and IoError on read errors.
  int64_t read(int64_t n, std::vector<unsigned char>& out) {
    int64_t got = 0;
    while (got < n) {
      const auto want = static_cast<unsigned>(std::min<int64_t>(n - got, kChunk));
      const std::size_t old = out.size();
      out.resize(old + want);
      errno = 0;
      const int r = gzread(file_, out.data() + old, want);
      out.resize(old + static_cast<std::size_t>(std::max(r, 0)));
      if (r > 0) got += r;
      check();
      if (r <= 0) break;
    }
    return got;
  }

  // Counts the bytes left until the end of the data (without keeping them).
  int64_t count_rest() {
    std::vector<unsigned char> scratch;
    int64_t total = 0;
    for (;;) {
      scratch.clear();
      const int64_t r = read(kChunk, scratch);
      total += r;
      if (r < static_cast<int64_t>(kChunk)) return total;
    }
  }

  // The gzip stream ended before its trailer: the data may be complete but the file is not.
  bool stream_cut_short() const {
    int errnum = Z_OK;
    gzerror(file_, &errnum);
    return errnum == Z_BUF_ERROR;
  }

 private:
  void check() {
    int errnum = Z_OK;
    const char* msg = gzerror(file_, &errnum);
    if (errnum == Z_OK || errnum == Z_BUF_ERROR) return;  // Z_BUF_ERROR: truncated, see caller
    if (errnum == Z_ERRNO)
      throw IoError(path_ + ": read error: " + std::strerror(errno ? errno : EIO));
    if (errnum == Z_MEM_ERROR) throw IoError(path_ + ": zlib ran out of memory");
    std::string reason = msg ? msg : "unknown zlib error";
    if (reason.rfind(path_ + ": ", 0) == 0) reason.erase(0, path_.size() + 2);  // zlib prefixes it
    throw FormatError(path_ + ": corrupt gzip data: " + reason);
  }

  std::string path_;
  gzFile file_ = nullptr;
};

uint32_t be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

struct IdxData {
  std::vector<int64_t> dims;
  std::vector<unsigned char> bytes;
};

// Reads an unsigned-byte IDX file with `ndims` dimensions and checks every promise it makes.
IdxData read_idx(const std::string& path, uint32_t magic, const char* what) {
  GzReader in(path);
  const int ndims = static_cast<int>(magic & 0xff);
  const int64_t header_bytes = 4 + 4 * int64_t{ndims};
  std::vector<unsigned char> header;
  const int64_t got = in.read(header_bytes, header);
  if (got >= 4 && be32(header.data()) != magic) {
    const uint32_t m = be32(header.data());
    std::string hint;
    if (m == kImagesMagic) hint = " (this is an IDX image file)";
    if (m == kLabelsMagic) hint = " (this is an IDX label file)";
    if (header[0] == 0x1f && header[1] == 0x8b) hint = " (gzip data: compressed twice?)";
    throw FormatError(path + ": bad IDX magic " + hex32(m) + ", expected " + hex32(magic) + " (" +
                      what + ")" + hint);
  }
  if (got < header_bytes)
    throw FormatError(path + ": truncated IDX header: expected " + std::to_string(header_bytes) +
                      " bytes, found " + std::to_string(got));

  IdxData d;
  int64_t payload = 1;
  std::string dims_str;
  for (int i = 0; i < ndims; ++i) {
    const int64_t v = be32(header.data() + 4 + 4 * i);
    dims_str += (i ? " x " : "") + std::to_string(v);
    d.dims.push_back(v);
  }
  for (int i = 0; i < ndims; ++i) {
    const int64_t v = d.dims[static_cast<std::size_t>(i)];
    // The count (first dimension) may be 0; an image side may not.
    if (v == 0 && i > 0)
      throw FormatError(path + ": IDX dimensions " + dims_str + " contain a zero size");
    if (v != 0 && payload > kMaxIdxBytes / v)
      throw FormatError(path + ": IDX dimensions " + dims_str + " promise more than " +
                        std::to_string(kMaxIdxBytes) + " bytes; refusing to read");
    payload *= v;
  }
  if (payload > kMaxIdxBytes)
    throw FormatError(path + ": IDX dimensions " + dims_str + " promise more than " +
                      std::to_string(kMaxIdxBytes) + " bytes; refusing to read");

  // The buffer grows with the data actually read, so a lying header costs no memory.
  d.bytes.reserve(static_cast<std::size_t>(std::min<int64_t>(payload, int64_t{16} << 20)));
  const int64_t body = in.read(payload, d.bytes);
  if (body < payload)
    throw FormatError(path + ": truncated IDX file (" + what + ", " + dims_str + "): expected " +
                      std::to_string(header_bytes + payload) + " bytes (" +
                      std::to_string(header_bytes) + "-byte header + " + std::to_string(payload) +
                      " data bytes), found " + std::to_string(header_bytes + body) +
                      (in.stream_cut_short() ? " (the gzip stream ends early)" : ""));
  const int64_t extra = in.count_rest();
  if (extra > 0)
    throw FormatError(path + ": IDX file (" + what + ", " + dims_str + ") holds " +
                      std::to_string(header_bytes + payload + extra) + " bytes, expected " +
                      std::to_string(header_bytes + payload) + " (" + std::to_string(extra) +
                      " trailing byte(s))");
  if (in.stream_cut_short())
    throw FormatError(path + ": corrupt gzip data: the stream ends before its trailer");
  return d;
}

std::string find_file(const std::string& dir, const std::string& stem) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path gz = fs::path(dir) / (stem + ".gz");
  const fs::path raw = fs::path(dir) / stem;
  if (fs::exists(gz, ec)) return gz.string();
  if (fs::exists(raw, ec)) return raw.string();
  throw IoError("Fashion-MNIST: neither " + gz.string() + " nor " + raw.string() +
                " exists. Install the Debian package (apt-get install dataset-fashion-mnist) "
                "or set IMGSIM_FASHION_MNIST_DIR to a folder holding the IDX files");
}

}  // namespace

Tensor read_idx_images(const std::string& path) {
  IdxData d = read_idx(path, kImagesMagic, "images");
  Tensor t(Shape{d.dims[0], 1, d.dims[1], d.dims[2]});
  float* out = t.data();
  const auto n = d.bytes.size();
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(d.bytes[i]) / 255.0f;
  return t;
}

Tensor read_idx_labels(const std::string& path) {
  IdxData d = read_idx(path, kLabelsMagic, "labels");
  Tensor t(Shape{d.dims[0]});
  float* out = t.data();
  const auto n = d.bytes.size();
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(d.bytes[i]);
  return t;
}

std::string default_fashion_mnist_dir() {
  const char* env = std::getenv("IMGSIM_FASHION_MNIST_DIR");
  if (env && *env) return env;
  return "/usr/share/datasets/fashion-mnist";
}

LabeledImages load_fashion_mnist(Split split, const std::string& dir) {
  const std::string prefix = split == Split::train ? "train" : "t10k";
  const std::string images_path = find_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_file(dir, prefix + "-labels-idx1-ubyte");
  LabeledImages r{read_idx_images(images_path), read_idx_labels(labels_path)};
  if (r.images.dim(2) != 28 || r.images.dim(3) != 28)
    throw FormatError(images_path + ": Fashion-MNIST images must be 28 x 28, found " +
                      std::to_string(r.images.dim(2)) + " x " + std::to_string(r.images.dim(3)));
  if (r.images.dim(0) != r.labels.dim(0))
    throw FormatError("Fashion-MNIST: " + images_path + " holds " +
                      std::to_string(r.images.dim(0)) + " images but " + labels_path + " holds " +
                      std::to_string(r.labels.dim(0)) + " labels");
  const auto classes = static_cast<float>(fashion_mnist_class_names().size());
  for (int64_t i = 0; i < r.labels.numel(); ++i)
    if (r.labels[i] >= classes)
      throw FormatError(labels_path + ": label " + std::to_string(static_cast<int>(r.labels[i])) +
                        " at index " + std::to_string(i) + " is not a Fashion-MNIST class (0-9)");
  return r;
}

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

}  // namespace imgsim::data
