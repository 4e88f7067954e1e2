# A model whose output is [mean(ch0), 2 * mean(ch1) + 0.25] of a [1, 3, 8, 8] input:
# its scores are known exactly, and the second is always above 0.25.
import sys, onnx
from onnx import helper, TensorProto
weights = helper.make_tensor('w', TensorProto.FLOAT, [3, 2], [1, 0, 0, 2, 0, 0])
bias = helper.make_tensor('b', TensorProto.FLOAT, [2], [0, 0.25])
graph = helper.make_graph(
    [helper.make_node('ReduceMean', ['image'], ['means'], axes=[2, 3], keepdims=0),
     helper.make_node('MatMul', ['means', 'w'], ['scaled']),
     helper.make_node('Add', ['scaled', 'b'], ['scores'])],
    'tiny', [helper.make_tensor_value_info('image', TensorProto.FLOAT, [1, 3, 8, 8])],
    [helper.make_tensor_value_info('scores', TensorProto.FLOAT, [1, 2])], [weights, bias])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, sys.argv[1])
