-- LeNet-5 (the Caffe variant: 20 and 50 filters, 500 hidden units) for
-- 28x28 grayscale images; here Fashion-MNIST, 10 classes of clothing.
--
-- An architecture script is plain Lua that returns one table. lathe runs it
-- in a sandbox (no files, no os, no require; 64 MiB and ~10 million
-- instructions at most) and reads the table exactly like the JSON format
-- "lathe-arch-1" (samples/lenet5.arch.json is the same network as JSON).
--
-- Shapes are per sample, [channels, height, width] for images. A KxK
-- convolution without padding and with stride 1 shrinks each side by K - 1;
-- it holds out*in*K*K weights plus out biases and costs out*in*K*K MACs
-- (multiply-accumulates) for each output pixel. A 2x2 max pool with stride
-- 2 keeps the largest of each 2x2 block, halving each side.
--
--   layer    shape after    parameters                   MACs
--   input    [1, 28, 28]
--   conv1    [20, 24, 24]   20*1*5*5  +  20 =     520      288,000
--   maxpool  [20, 12, 12]
--   relu     [20, 12, 12]
--   conv2    [50, 8, 8]     50*20*5*5 +  50 =  25,050    1,600,000
--   maxpool  [50, 4, 4]
--   relu     [50, 4, 4]
--   flatten  [800]
--   fc1      [500]          800*500   + 500 = 400,500      400,000
--   relu     [500]
--   fc2      [10]           500*10    +  10 =   5,010        5,000
--   total                                   431,080    2,293,000
--
-- Pooling comes before ReLU: max pooling and ReLU commute, and the ReLU then
-- touches a quarter of the values.

return {
  -- One channel (grayscale), 28 x 28 pixels.
  input = {1, 28, 28},

  -- x = (pixel / 255 - 0.2858) / 0.3529: 0.2858 and 0.3529 are the mean and
  -- standard deviation of the 55,000 training images (rounded). Keep them in
  -- step with samples/lenet5.arch.json and samples/lenet300.arch.lua.
  preprocess = {scale = 255, mean = {0.2858}, std = {0.3529}},

  layers = {
    -- 20 filters of 5x5 over the single input channel. kernel_size, stride
    -- and padding take an integer or a {height, width} pair; stride
    -- defaults to 1 and padding to 0. Tensors: conv1.weight [20, 1, 5, 5],
    -- conv1.bias [20].
    {op = "conv2d", name = "conv1", in_channels = 1, out_channels = 20, kernel_size = 5},
    -- 2x2 max pool; a pool's stride defaults to its kernel size.
    {op = "maxpool2d", kernel_size = 2},
    {op = "relu"},
    -- 50 filters of 5x5, each over all 20 channels of the previous layer.
    {op = "conv2d", name = "conv2", in_channels = 20, out_channels = 50, kernel_size = {5, 5}},
    {op = "maxpool2d", kernel_size = 2, stride = 2},
    {op = "relu"},
    -- [50, 4, 4] -> [800], so that a linear layer can read it.
    {op = "flatten"},
    -- Fully connected: 800 -> 500 (fc1.weight [500, 800], fc1.bias [500]).
    {op = "linear", name = "fc1", in_features = 50 * 4 * 4, out_features = 500},
    {op = "relu"},
    -- One score (logit) per class; no softmax: the largest score wins.
    {op = "linear", name = "fc2", in_features = 500, out_features = 10},
  },
}
