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
constexpr char kCheckpointMagic[8] = {'I', 'M', 'G', 'S', 'I', 'M', 'C', 'K'};
constexpr uint32_t kFormatVersion = 1;
constexpr uint32_t kCheckpointVersion = 1;
constexpr std::size_t kHeaderSize = 8 + 4 + 4 + 8 + 4;
constexpr uint32_t kMaxLayers = 10000;

// The 28-byte header (magic, version, flags 0, payload size, CRC-32) and the payload, written
// atomically to `path`.
void write_framed(const std::string& path, const char (&magic)[8], uint32_t version,
                  const ByteWriter& p) {
  ByteWriter file;
  file.bytes(magic, 8);
  file.u32(version);
  file.u32(0);
  file.u64(p.buffer().size());
  file.u32(crc32(p.buffer().data(), p.buffer().size()));
  file.bytes(p.buffer().data(), p.buffer().size());
  write_file_atomic(path, file.buffer());
}

// A layer's parameters (u32 count, then str name + tensor each) and state tensors (u32 count,
// then each tensor): the same record in model files and checkpoints.
void write_tensors(ByteWriter& p, Layer& l) {
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

// Checks the header of `bytes` (a file of `kind`, "model" or "training checkpoint") and its
// checksum; returns the payload's offset.
std::size_t check_framed(const std::vector<uint8_t>& bytes, const std::string& what,
                         const char (&magic)[8], uint32_t version_read, const char* kind) {
  ByteReader h(bytes.data(), bytes.size(), what);
  if (bytes.size() < kHeaderSize)
    h.fail("too short for an imgsim " + std::string(kind) + " (" + std::to_string(bytes.size()) +
           " bytes, the header alone is " + std::to_string(kHeaderSize) + ")");
  char found[8];
  h.bytes(found, 8, "magic");
  if (std::memcmp(found, magic, 8) != 0)
    h.fail("not an imgsim " + std::string(kind) + ": expected magic '" + std::string(magic, 8) +
           "', found '" + std::string(found, 8).c_str() + "'");
  const uint32_t version = h.u32("format version");
  if (version != version_read)
    h.fail("format version " + std::to_string(version) + " is not supported (this build reads " +
           std::to_string(version_read) + ")");
  h.u32("flags");
  const uint64_t size = h.u64("payload size");
  const uint32_t crc = h.u32("payload checksum");
  if (size != h.remaining())
    h.fail("payload size says " + std::to_string(size) + " bytes but the file holds " +
           std::to_string(h.remaining()) + " (truncated or padded)");
  const uint32_t actual = crc32(bytes.data() + kHeaderSize, static_cast<std::size_t>(size));
  if (actual != crc)
    h.fail("checksum mismatch: header says " + std::to_string(crc) + ", payload gives " +
           std::to_string(actual) + " (the file is corrupt)");
  return kHeaderSize;
}
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
    write_tensors(p, l);
  }
  p.u32(static_cast<uint32_t>(impl_->metadata.size()));
  for (const auto& [k, v] : impl_->metadata) {
    p.str(k);
    p.str(v);
  }
  write_framed(path, kMagic, kFormatVersion, p);
}

void Sequential::load(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  const std::string what = "model file '" + path + "'";
  const std::size_t at = check_framed(bytes, what, kMagic, kFormatVersion, "model");
  const uint8_t* payload = bytes.data() + at;
  ByteReader r(payload, bytes.size() - at, what);
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

// --- training checkpoints ---------------------------------------------------------------------
//
//   header as above, magic "IMGSIMCK", version 1
//   payload
//     u32 layer count, then per layer: str type, str name,
//       u32 param count + (str name, tensor) each, u32 state count + tensor each,
//       u8 1 + generator state (4 u64, u8 spare flag, f32 spare) for a layer that draws random
//       numbers (Dropout), else u8 0
//     u64 extra size + the caller's bytes
//     the optimizer's record (Optimizer::save_state)

void Sequential::save_checkpoint(const std::string& path, const std::vector<uint8_t>& extra) const {
  if (!built_ || !impl_->opt)
    throw StateError("Sequential::save_checkpoint: the model is not built and compiled");
  ByteWriter p;
  p.u32(static_cast<uint32_t>(impl_->layers.size()));
  for (const auto& lp : impl_->layers) {
    Layer& l = *lp;
    p.str(l.type());
    p.str(l.name);
    write_tensors(p, l);
    const Rng* g = l.random_stream();
    p.u8(g ? 1 : 0);
    if (g) p.rng_state(g->state());
  }
  p.u64(extra.size());
  p.bytes(extra.data(), extra.size());
  impl_->opt->save_state(p);
  write_framed(path, kCheckpointMagic, kCheckpointVersion, p);
}

std::vector<uint8_t> Sequential::load_checkpoint(const std::string& path) {
  if (!built_ || !impl_->opt)
    throw StateError("Sequential::load_checkpoint: the model is not built and compiled");
  const std::vector<uint8_t> bytes = read_file(path);
  const std::string what = "training checkpoint '" + path + "'";
  const std::size_t at =
      check_framed(bytes, what, kCheckpointMagic, kCheckpointVersion, "training checkpoint");
  ByteReader r(bytes.data() + at, bytes.size() - at, what);
  const uint32_t count = r.u32("layer count");
  if (count != impl_->layers.size())
    r.fail("written for a model of " + std::to_string(count) + " layers, this one has " +
           std::to_string(impl_->layers.size()));
  // Read everything into copies first; the model changes only when the whole file is valid.
  std::vector<std::pair<Tensor*, Tensor>> staged;
  std::vector<std::pair<Rng*, Rng::State>> streams;
  for (const auto& lp : impl_->layers) {
    Layer& l = *lp;
    const std::string type = r.str("layer type");
    const std::string name = r.str("layer name");
    if (type != l.type() || name != l.name)
      r.fail("written for another model: layer " + name + " (" + type + ") where this one has " +
             l.name + " (" + l.type() + ")");
    auto params = l.params();
    const uint32_t np = r.u32("parameter count");
    if (np != params.size())
      r.fail("layer " + name + ": expected " + std::to_string(params.size()) +
             " parameter tensors, found " + std::to_string(np));
    for (Param& prm : params) {
      const std::string pname = r.str("parameter name");
      if (pname != prm.name)
        r.fail("layer " + name + ": expected parameter '" + prm.name + "', found '" + pname + "'");
      Tensor t(prm.value->shape());
      r.tensor_into(t, (name + "." + pname).c_str());
      staged.emplace_back(prm.value, std::move(t));
    }
    auto st = l.state();
    const uint32_t ns = r.u32("state count");
    if (ns != st.size())
      r.fail("layer " + name + ": expected " + std::to_string(st.size()) +
             " state tensors, found " + std::to_string(ns));
    for (Tensor* s : st) {
      Tensor t(s->shape());
      r.tensor_into(t, (name + ".state").c_str());
      staged.emplace_back(s, std::move(t));
    }
    Rng* g = l.random_stream();
    if ((r.u8("generator flag") != 0) != (g != nullptr))
      r.fail("layer " + name + ": generator state " + (g ? "missing" : "where none is expected"));
    if (g) streams.emplace_back(g, r.rng_state((name + ".generator").c_str()));
  }
  const uint64_t n_extra = r.u64("extra size");
  if (n_extra > r.remaining()) r.fail("extra size beyond the end of the file");
  std::vector<uint8_t> extra(static_cast<std::size_t>(n_extra));
  r.bytes(extra.data(), extra.size(), "extra");
  impl_->opt->load_state(r, params());
  if (r.remaining() != 0) {
    impl_->opt->reset();
    r.fail(std::to_string(r.remaining()) + " unexpected bytes after the optimizer state");
  }
  for (auto& [dst, src] : staged) dst->copy_from(src);
  for (auto& [g, gs] : streams) g->set_state(gs);
  impl_->have_train_forward = false;
  return extra;
}

Sequential Sequential::from_file(const std::string& path) {
  Sequential m;
  m.load(path);
  return m;
}

}  // namespace imgsim::nn
