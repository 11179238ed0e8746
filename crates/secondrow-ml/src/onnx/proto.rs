//! The protobuf wire format of the few ONNX messages the exporter writes (tensors, value infos, nodes
//! and their attributes), by hand: no protobuf dependency.

#[derive(Default)]
pub(super) struct Pb(pub(super) Vec<u8>);

impl Pb {
    pub(super) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    pub(super) fn key(&mut self, field: u32, wire: u32) {
        self.varint(((field << 3) | wire) as u64);
    }
    pub(super) fn int(&mut self, field: u32, v: i64) -> &mut Pb {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }
    pub(super) fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Pb {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    pub(super) fn string(&mut self, field: u32, s: &str) -> &mut Pb {
        self.bytes(field, s.as_bytes())
    }
    pub(super) fn message(&mut self, field: u32, m: &Pb) -> &mut Pb {
        self.bytes(field, &m.0)
    }
    /// Packed repeated floats.
    pub(super) fn floats(&mut self, field: u32, v: &[f32]) -> &mut Pb {
        let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.bytes(field, &raw)
    }
    /// Packed repeated varints.
    pub(super) fn ints(&mut self, field: u32, v: &[i64]) -> &mut Pb {
        let mut packed = Pb::default();
        v.iter().for_each(|&x| packed.varint(x as u64));
        self.bytes(field, &packed.0)
    }
}

pub(super) fn tensor(name: &str, dims: &[i64], values: &[f32]) -> Pb {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    raw_tensor(name, dims, 1, &raw) // FLOAT
}

/// An int64 tensor (shapes, axes, counts, category indices).
pub(super) fn tensor_i64(name: &str, dims: &[i64], values: &[i64]) -> Pb {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    raw_tensor(name, dims, 7, &raw) // INT64
}

/// TensorProto with little-endian `raw_data` of element type `elem_type`.
pub(super) fn raw_tensor(name: &str, dims: &[i64], elem_type: i64, raw: &[u8]) -> Pb {
    let mut t = Pb::default();
    for &d in dims {
        t.int(1, d);
    }
    t.int(2, elem_type);
    t.string(8, name);
    t.bytes(9, raw);
    t
}

/// ValueInfoProto of a tensor; `None` dims are symbolic (`N`).
pub(super) fn value_info(name: &str, elem_type: i64, dims: &[Option<i64>]) -> Pb {
    let mut shape = Pb::default();
    for d in dims {
        let mut dim = Pb::default();
        match d {
            Some(v) => dim.int(1, *v),
            None => dim.string(2, "N"),
        };
        shape.message(1, &dim);
    }
    let mut tensor_type = Pb::default();
    tensor_type.int(1, elem_type).message(2, &shape);
    let mut type_proto = Pb::default();
    type_proto.message(1, &tensor_type);
    let mut v = Pb::default();
    v.string(1, name).message(2, &type_proto);
    v
}

/// A node attribute value.
pub(super) enum Attr<'a> {
    Int(i64),
    Str(&'a str),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Strs(Vec<&'a str>),
}

pub(super) fn node(op: &str, domain: &str, inputs: &[&str], outputs: &[&str], attrs: &[(&str, Attr)]) -> Pb {
    let mut n = Pb::default();
    for i in inputs {
        n.string(1, i);
    }
    for o in outputs {
        n.string(2, o);
    }
    n.string(3, &format!("{op}_{}", outputs[0])).string(4, op);
    for (name, value) in attrs {
        let mut a = Pb::default();
        a.string(1, name);
        // AttributeProto fields: i 3, s 4, floats 7, ints 8, strings 9, type 20.
        match value {
            Attr::Int(v) => a.int(3, *v).int(20, 2),
            Attr::Str(v) => a.string(4, v).int(20, 3),
            Attr::Floats(v) => a.floats(7, v).int(20, 6),
            Attr::Ints(v) => a.ints(8, v).int(20, 7),
            Attr::Strs(v) => {
                v.iter().for_each(|s| {
                    a.string(9, s);
                });
                a.int(20, 8)
            }
        };
        n.message(5, &a);
    }
    if !domain.is_empty() {
        n.string(7, domain);
    }
    n
}
