; A MobileNet depthwise-separable block: 3x3 depthwise conv (one group per channel) and a 1x1
; pointwise conv, each followed by BatchNorm + ReLU. The includer defines [conv_def] (dense),
; [prune_def] (pruned, for the pointwise conv) and [bn_def].
; Parameters: INPUT, NB_CHANNELS (input width), NB_FILTERS, STRIDE.

[{{SECTION_NAME}}_dw] conv_def
Input={{INPUT}}
KernelDims=3 3
Padding=1
Stride={{STRIDE}}
NbOutputs={{NB_CHANNELS}}
Mapping.ChannelsPerGroup=1

[{{SECTION_NAME}}_dw_bn] bn_def
Input={{SECTION_NAME}}_dw
NbOutputs={{NB_CHANNELS}}

[{{SECTION_NAME}}_pw] prune_def
Input={{SECTION_NAME}}_dw_bn
KernelDims=1 1
NbOutputs={{NB_FILTERS}}

[{{SECTION_NAME}}_pw_bn] bn_def
Input={{SECTION_NAME}}_pw
NbOutputs={{NB_FILTERS}}
