-- LeNet-300-100: the classic fully connected network for 28x28 digit or
-- clothing images (here Fashion-MNIST: 10 classes of clothing).
--
-- An architecture script is plain Lua that returns one table. lathe runs it
-- in a sandbox (no files, no os, no require; 64 MiB and ~10 million
-- instructions at most) and reads the table exactly like the JSON format
-- "lathe-arch-1" (samples/lenet300.arch.json is the same network as JSON).
-- Plain Lua is allowed for computing sizes, as long as the result is data.
--
-- Shapes below are per sample (no batch dimension). A linear layer with
-- `in` inputs and `out` outputs holds in*out weights plus out biases, and
-- costs in*out multiply-accumulates (MACs) per sample.
--
--   layer  shape after   parameters              MACs
--   input  [784]
--   fc1    [300]         784*300 + 300 = 235,500   235,200
--   relu   [300]
--   fc2    [100]         300*100 + 100 =  30,100    30,000
--   relu   [100]
--   fc3    [10]          100*10  +  10 =   1,010     1,000
--   total                              266,610   266,200

local pixels = 28 * 28 -- 784: the image is fed in as one flat vector

return {
  -- Per-sample input shape: a flat vector of 784 pixels.
  input = {pixels},

  -- Pixels arrive as bytes 0..255 and become x = (pixel / scale - mean) / std.
  -- 0.2858 and 0.3529 are the mean and standard deviation of the 55,000
  -- training images (rounded), so the network sees inputs of mean 0, std 1.
  -- Keep them in step with samples/lenet5.arch.json.
  preprocess = {scale = 255, mean = {0.2858}, std = {0.3529}},

  layers = {
    -- Hidden layer 1: 784 -> 300. Its tensors are fc1.weight [300, 784]
    -- and fc1.bias [300]; "name" is what ties a layer to its tensors.
    {op = "linear", name = "fc1", in_features = pixels, out_features = 300},
    -- ReLU keeps positive values and zeroes the rest; no parameters.
    {op = "relu"},
    -- Hidden layer 2: 300 -> 100 (fc2.weight [100, 300], fc2.bias [100]).
    {op = "linear", name = "fc2", in_features = 300, out_features = 100},
    {op = "relu"},
    -- Output layer: one score (logit) per class. No softmax: the class with
    -- the largest score is the prediction, and softmax would not change it.
    {op = "linear", name = "fc3", in_features = 100, out_features = 10},
  },
}
