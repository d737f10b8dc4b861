// Umbrella header: everything imgsim offers.
#pragma once

#include "imgsim/data/dataset.hpp"
#include "imgsim/data/image_folder.hpp"
#include "imgsim/data/mnist.hpp"
#include "imgsim/error.hpp"
#include "imgsim/image/image.hpp"
#include "imgsim/nn/layer.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/loss.hpp"
#include "imgsim/nn/metric_loss.hpp"
#include "imgsim/nn/optimizer.hpp"
#include "imgsim/nn/sequential.hpp"
#include "imgsim/nn/serialize.hpp"
#include "imgsim/rng.hpp"
#include "imgsim/runtime/cpu.hpp"
#include "imgsim/tensor.hpp"
