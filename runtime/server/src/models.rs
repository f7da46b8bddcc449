//! `GET /v1/models`: the one model this server serves.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use super::AppState;
use deepseek_protocol::{ModelCard, ModelList};

pub async fn list_models(State(st): State<Arc<AppState>>) -> Json<ModelList> {
    Json(ModelList {
        object: "list".into(),
        data: vec![ModelCard {
            id: st.limits.served_model_name.clone(),
            object: "model".into(),
            created: st.created,
            owned_by: "deepseek-runtime".into(),
        }],
    })
}
