//! OpenAPI schemas of the engine's settings that clients write inside a campaign: the
//! space (`SpaceSpec`) and the network (`GfnConfig` with its `Objective` and
//! `BackwardPolicy`). The engine stays free of the web layer's documentation crate, so their
//! schemas are built here; the names, defaults and enum values come from the engine's own
//! types and serde, and the tests below hold the documented properties to what serde reads
//! and writes.

use crate::gfn::{BackwardPolicy, GfnConfig, Objective, SpaceSpec};
use serde_json::Value;
use std::borrow::Cow;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema,
    SchemaFormat, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// Every objective, in the order the document lists them.
const OBJECTIVES: [Objective; 4] = [
    Objective::Tb,
    Objective::Db,
    Objective::Subtb,
    Objective::Fm,
];

/// Every backward policy, in the order the document lists them.
const BACKWARD_POLICIES: [BackwardPolicy; 2] = [BackwardPolicy::Learned, BackwardPolicy::Uniform];

/// A value as serde writes it: the wire name of an enum variant, a default.
fn wire<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// A string enum of the given values.
fn string_enum(description: &str, values: impl IntoIterator<Item = Value>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(values))
        .into()
}

fn integer(description: &str, minimum: usize, maximum: Option<usize>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .description(Some(description))
        .maximum(maximum)
        .minimum(Some(minimum))
}

fn positive_number(description: &str, maximum: Option<f64>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Double)))
        .description(Some(description))
        .maximum(maximum)
        .exclusive_minimum(Some(0.0))
}

fn strings(description: &str, min_items: usize, max_items: usize) -> ArrayBuilder {
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
        .max_items(Some(max_items))
        .min_items(Some(min_items))
}

impl PartialSchema for Objective {
    fn schema() -> RefOr<Schema> {
        string_enum(
            "Which balance condition the policy is trained to satisfy.",
            OBJECTIVES.iter().map(wire),
        )
    }
}

impl ToSchema for Objective {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Objective")
    }
}

impl PartialSchema for BackwardPolicy {
    fn schema() -> RefOr<Schema> {
        string_enum(
            "How the backward policy `P_B` is obtained.",
            BACKWARD_POLICIES.iter().map(wire),
        )
    }
}

impl ToSchema for BackwardPolicy {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("BackwardPolicy")
    }
}

/// A reference to a named schema with a default, as a property.
fn reference_with_default(name: &str, default: Value) -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(Ref::from_schema_name(name))
        .default(Some(default))
        .into()
}

impl PartialSchema for GfnConfig {
    fn schema() -> RefOr<Schema> {
        let d = GfnConfig::default();
        let with_default = |b: ObjectBuilder, v: Value| b.default(Some(v));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("Network and optimisation settings of a GFlowNet."))
            .property(
                "objective",
                reference_with_default("Objective", wire(&d.objective)),
            )
            .property(
                "backward_policy",
                reference_with_default("BackwardPolicy", wire(&d.backward_policy)),
            )
            .property(
                "hidden",
                with_default(
                    integer("Width of each hidden layer.", 1, Some(4096)),
                    wire(&d.hidden),
                ),
            )
            .property(
                "layers",
                with_default(
                    integer("Number of hidden layers.", 1, Some(8)),
                    wire(&d.layers),
                ),
            )
            .property(
                "lr",
                with_default(
                    positive_number("Adam learning rate of the network.", Some(1.0)),
                    wire(&d.lr),
                ),
            )
            .property(
                "lr_log_z",
                with_default(
                    positive_number(
                        "Adam learning rate of log Z (TB), usually much larger than `lr`.",
                        Some(10.0),
                    ),
                    wire(&d.lr_log_z),
                ),
            )
            .property(
                "subtb_lambda",
                with_default(
                    positive_number("SubTB's lambda.", Some(1.0)),
                    wire(&d.subtb_lambda),
                ),
            )
            .property(
                "fm_epsilon",
                with_default(
                    positive_number("FM's epsilon in `log(eps + flow)`.", None),
                    wire(&d.fm_epsilon),
                ),
            )
            .property(
                "max_grad_norm",
                with_default(
                    positive_number(
                        "Largest global L2 norm of the gradient (network and log Z together): a larger one is\nscaled down to it before the Adam update, so one outlying batch cannot throw the\npolicy far off. Positive and finite.",
                        None,
                    ),
                    wire(&d.max_grad_norm),
                ),
            )
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl ToSchema for GfnConfig {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("GfnConfig")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Objective::name().into(), Objective::schema()));
        schemas.push((BackwardPolicy::name().into(), BackwardPolicy::schema()));
    }
}

/// One variant of the space: an object with its `type` tag and properties.
fn space_variant(
    tag: &str,
    description: &str,
    properties: Vec<(&str, RefOr<Schema>, bool)>,
) -> Schema {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description));
    for (name, schema, required) in properties {
        object = object.property(name, schema);
        if required {
            object = object.required(name);
        }
    }
    object
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([tag])),
        )
        .required("type")
        .into()
}

impl PartialSchema for SpaceSpec {
    fn schema() -> RefOr<Schema> {
        let sequence = space_variant(
            "sequence",
            "Strings of tokens; a value is the tokens joined by the separator.",
            vec![
                (
                    "alphabet",
                    strings(
                        "2..=1024 distinct non-empty tokens; with an empty separator, a uniquely\ndecodable code (no two different token sequences may spell the same text) whose\ntokens have at most 64 chars if one is a prefix of another.",
                        2,
                        1024,
                    )
                    .into(),
                    true,
                ),
                (
                    "min_length",
                    integer("Fewest tokens, `1..=max_length`.", 1, Some(512)).into(),
                    true,
                ),
                (
                    "max_length",
                    integer("Most tokens, 1..=512.", 1, Some(512)).into(),
                    true,
                ),
                (
                    "separator",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some(
                            "Written between tokens (default empty); may not occur in a token.",
                        ))
                        .into(),
                    false,
                ),
            ],
        );
        let grid = space_variant(
            "grid",
            "Points of a `size^dims` grid; a value is an array of `dims` integers in `[0, size)`.",
            vec![
                ("dims", integer("1..=16.", 1, Some(16)).into(), true),
                ("size", integer("2..=1024.", 2, Some(1024)).into(), true),
            ],
        );
        let set = space_variant(
            "set",
            "Subsets of the items; a value is an array of items.",
            vec![
                (
                    "items",
                    strings("2..=4096 distinct non-empty strings.", 2, 4096).into(),
                    true,
                ),
                (
                    "min_size",
                    integer("Fewest items, `0..=max_size`.", 0, Some(4096)).into(),
                    true,
                ),
                (
                    "max_size",
                    integer("Most items, `1..=items.len()`.", 1, Some(4096)).into(),
                    true,
                ),
            ],
        );
        OneOfBuilder::new()
            .item(sequence)
            .item(grid)
            .item(set)
            .description(Some("The space part of a campaign, as clients write it."))
            .into()
    }
}

impl ToSchema for SpaceSpec {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("SpaceSpec")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;

    fn document(schema: RefOr<Schema>) -> Value {
        serde_json::to_value(schema).expect("a schema serialises")
    }

    fn property_names(object: &Value) -> BTreeSet<String> {
        object["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .cloned()
            .collect()
    }

    /// Fails to compile when a variant is added, until the lists above name it.
    fn listed(objective: Objective, backward: BackwardPolicy) -> bool {
        let objective_listed = match objective {
            Objective::Tb | Objective::Db | Objective::Subtb | Objective::Fm => {
                OBJECTIVES.contains(&objective)
            }
        };
        let backward_listed = match backward {
            BackwardPolicy::Learned | BackwardPolicy::Uniform => {
                BACKWARD_POLICIES.contains(&backward)
            }
        };
        objective_listed && backward_listed
    }

    #[test]
    fn the_enums_list_every_variant_under_the_name_serde_reads() {
        for objective in OBJECTIVES {
            assert!(listed(objective, BackwardPolicy::Learned));
        }
        let documented = document(Objective::schema());
        for name in documented["enum"].as_array().expect("enum") {
            let read: Objective = serde_json::from_value(name.clone()).expect("serde reads it");
            assert_eq!(&wire(&read), name);
        }
        assert_eq!(
            documented["enum"].as_array().map(Vec::len),
            Some(OBJECTIVES.len())
        );
        let documented = document(BackwardPolicy::schema());
        for name in documented["enum"].as_array().expect("enum") {
            let read: BackwardPolicy =
                serde_json::from_value(name.clone()).expect("serde reads it");
            assert_eq!(&wire(&read), name);
        }
    }

    #[test]
    fn the_network_settings_document_every_field_with_its_default() {
        let documented = document(GfnConfig::schema());
        let defaults = wire(&GfnConfig::default());
        let fields: BTreeSet<String> = defaults
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect();
        assert_eq!(property_names(&documented), fields);
        for (field, value) in defaults.as_object().expect("object") {
            assert_eq!(
                &documented["properties"][field]["default"], value,
                "{field}"
            );
        }
        // Unknown fields are refused, as the document says.
        assert_eq!(documented["additionalProperties"], json!(false));
        assert!(serde_json::from_value::<GfnConfig>(json!({"hiden": 3})).is_err());
    }

    #[test]
    fn each_space_documents_the_fields_serde_reads_and_requires() {
        let documented = document(SpaceSpec::schema());
        let variants = documented["oneOf"].as_array().expect("oneOf");
        assert_eq!(variants.len(), 3);
        for variant in variants {
            let required: Vec<&str> = variant["required"]
                .as_array()
                .expect("required")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            // A body of the required properties alone, each at its least allowed value.
            let mut body = serde_json::Map::new();
            for name in &required {
                let property = &variant["properties"][*name];
                let value = match property["type"].as_str() {
                    Some("array") => json!(["a", "b"]),
                    Some("integer") => json!(property["minimum"].as_u64().unwrap_or(0).max(1)),
                    _ => property["enum"][0].clone(),
                };
                body.insert((*name).to_string(), value);
            }
            let read: SpaceSpec =
                serde_json::from_value(Value::Object(body.clone())).expect("serde reads it");
            let written = wire(&read);
            assert_eq!(
                property_names(variant),
                written
                    .as_object()
                    .expect("object")
                    .keys()
                    .cloned()
                    .collect(),
                "{variant}"
            );
            for name in required {
                let mut missing = body.clone();
                missing.remove(name);
                assert!(
                    serde_json::from_value::<SpaceSpec>(Value::Object(missing)).is_err(),
                    "{name} is required"
                );
            }
        }
    }
}
