// Model files (docs/file-format.md).
//
//   header (28 bytes)
//     magic          8 bytes  "IMGSIMMD"
//     format version u32      1
//     flags          u32      0
//     payload size   u64
//     payload crc32  u32      CRC-32 (zlib) of the payload
//   payload
//     input shape, u32 layer count, then per layer:
//       str type, u32 record version, str name,
//       u64 config size + config bytes (Layer::save_config),
//       u32 param count + (str name, tensor) each,
//       u32 state count + tensor each
//     u32 metadata count + (str key, str value) each
//
// Loading parses and validates everything into fresh layers first; the model in memory is
// replaced only when the whole file is valid.
#include <cstring>

#include "imgsim/error.hpp"
#include "imgsim/nn/serialize.hpp"
#include "nn/sequential_impl.hpp"

namespace imgsim::nn {

namespace {
constexpr char kMagic[8] = {'I', 'M', 'G', 'S', 'I', 'M', 'M', 'D'};
constexpr uint32_t kFormatVersion = 1;
constexpr std::size_t kHeaderSize = 8 + 4 + 4 + 8 + 4;
constexpr uint32_t kMaxLayers = 10000;
}  // namespace

void Sequential::save(const std::string& path) const {
  if (!built_) throw StateError("Sequential::save: the model is not built");
  ByteWriter p;
  p.shape(impl_->input);
  p.u32(static_cast<uint32_t>(impl_->layers.size()));
  for (const auto& lp : impl_->layers) {
    Layer& l = *lp;
    p.str(l.type());
    p.u32(l.version());
    p.str(l.name);
    ByteWriter cfg;
    l.save_config(cfg);
    p.u64(cfg.buffer().size());
    p.bytes(cfg.buffer().data(), cfg.buffer().size());
    auto params = l.params();
    p.u32(static_cast<uint32_t>(params.size()));
    for (const Param& prm : params) {
      p.str(prm.name);
      p.tensor(*prm.value);
    }
    auto st = l.state();
    p.u32(static_cast<uint32_t>(st.size()));
    for (const Tensor* t : st) p.tensor(*t);
  }
  p.u32(static_cast<uint32_t>(impl_->metadata.size()));
  for (const auto& [k, v] : impl_->metadata) {
    p.str(k);
    p.str(v);
  }
  ByteWriter file;
  file.bytes(kMagic, 8);
  file.u32(kFormatVersion);
  file.u32(0);
  file.u64(p.buffer().size());
  file.u32(crc32(p.buffer().data(), p.buffer().size()));
  file.bytes(p.buffer().data(), p.buffer().size());
  write_file_atomic(path, file.buffer());
}

void Sequential::load(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  const std::string what = "model file '" + path + "'";
  ByteReader h(bytes.data(), bytes.size(), what);
  if (bytes.size() < kHeaderSize)
    h.fail("too short for an imgsim model (" + std::to_string(bytes.size()) +
           " bytes, the header alone is " + std::to_string(kHeaderSize) + ")");
  char magic[8];
  h.bytes(magic, 8, "magic");
  if (std::memcmp(magic, kMagic, 8) != 0)
    h.fail(std::string("not an imgsim model: expected magic 'IMGSIMMD', found '") +
           std::string(magic, 8).c_str() + "'");
  const uint32_t version = h.u32("format version");
  if (version != kFormatVersion)
    h.fail("format version " + std::to_string(version) + " is not supported (this build reads " +
           std::to_string(kFormatVersion) + ")");
  h.u32("flags");
  const uint64_t size = h.u64("payload size");
  const uint32_t crc = h.u32("payload checksum");
  if (size != h.remaining())
    h.fail("payload size says " + std::to_string(size) + " bytes but the file holds " +
           std::to_string(h.remaining()) + " (truncated or padded)");
  const uint8_t* payload = bytes.data() + kHeaderSize;
  const uint32_t actual = crc32(payload, static_cast<std::size_t>(size));
  if (actual != crc)
    h.fail("checksum mismatch: header says " + std::to_string(crc) + ", payload gives " +
           std::to_string(actual) + " (the file is corrupt)");

  ByteReader r(payload, static_cast<std::size_t>(size), what);
  const Shape input = r.shape("input shape");
  const uint32_t count = r.u32("layer count");
  if (count == 0 || count > kMaxLayers)
    r.fail("layer count " + std::to_string(count) + " out of range");
  std::vector<std::unique_ptr<Layer>> layers;
  Shape s = input;
  for (uint32_t i = 0; i < count; ++i) {
    const std::string type = r.str("layer type");
    const uint32_t lver = r.u32("layer version");
    const std::string name = r.str("layer name");
    auto layer = make_layer(type);
    if (!layer) r.fail("layer " + std::to_string(i) + ": unknown layer type '" + type + "'");
    if (lver > layer->version())
      r.fail("layer " + name + " (" + type + "): record version " + std::to_string(lver) +
             " is newer than this build reads (" + std::to_string(layer->version()) + ")");
    layer->name = name;
    const uint64_t cfg_size = r.u64("layer config size");
    if (cfg_size > r.remaining()) r.fail("layer " + name + ": config size beyond the end of file");
    ByteReader cr(payload + r.position(), static_cast<std::size_t>(cfg_size),
                  what + ", layer " + name + " (" + type + ")");
    layer->load_config(cr, lver);
    if (cr.remaining() != 0) cr.fail(std::to_string(cr.remaining()) + " unread config bytes");
    std::vector<uint8_t> skip(static_cast<std::size_t>(cfg_size));
    r.bytes(skip.data(), skip.size(), "layer config");
    try {
      s = layer->build(s);
    } catch (const Error& e) {
      r.fail("layer " + name + " (" + type + ") does not fit its input: " + e.what());
    }
    auto params = layer->params();
    const uint32_t np = r.u32("parameter count");
    if (np != params.size())
      r.fail("layer " + name + ": expected " + std::to_string(params.size()) +
             " parameter tensors, found " + std::to_string(np));
    for (Param& prm : params) {
      const std::string pname = r.str("parameter name");
      if (pname != prm.name)
        r.fail("layer " + name + ": expected parameter '" + prm.name + "', found '" + pname + "'");
      r.tensor_into(*prm.value, (name + "." + pname).c_str());
    }
    auto st = layer->state();
    const uint32_t ns = r.u32("state count");
    if (ns != st.size())
      r.fail("layer " + name + ": expected " + std::to_string(st.size()) +
             " state tensors, found " + std::to_string(ns));
    for (Tensor* t : st) r.tensor_into(*t, (name + ".state").c_str());
    layers.push_back(std::move(layer));
  }
  std::map<std::string, std::string> meta;
  const uint32_t nmeta = r.u32("metadata count");
  for (uint32_t i = 0; i < nmeta; ++i) {
    std::string k = r.str("metadata key");
    meta[k] = r.str("metadata value");
  }
  if (r.remaining() != 0)
    r.fail(std::to_string(r.remaining()) + " unexpected bytes after the last record");

  // Everything is valid: replace the model.
  impl_->layers = std::move(layers);
  impl_->input = input;
  impl_->acts.clear();
  impl_->grads.clear();
  impl_->acts.resize(impl_->layers.size());
  impl_->grads.resize(impl_->layers.size());
  impl_->param_cache.clear();
  impl_->have_train_forward = false;
  impl_->metadata = std::move(meta);
  for (std::size_t i = 0; i < impl_->layers.size(); ++i)
    impl_->layers[i]->set_seed(impl_->seed * 1000003ULL + i);
  built_ = true;
  // Optimizer state belonged to the old parameters.
  if (impl_->opt) impl_->opt->reset();
}

Sequential Sequential::from_file(const std::string& path) {
  Sequential m;
  m.load(path);
  return m;
}

}  // namespace imgsim::nn
