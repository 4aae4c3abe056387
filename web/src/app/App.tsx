/** Routes and providers. Features never import each other: code flows
 * shared (components, lib) → features → app. */
import { QueryClientProvider } from "@tanstack/react-query";
import { BrowserRouter, Link, NavLink, Navigate, Outlet, Route, Routes } from "react-router";
import { RequireAuth, SignInPage, WhoAmI } from "../features/auth";
import { DatasetLayout, DatasetsPage, JobsPage } from "../features/datasets";
import { JobPage } from "../features/jobs";
import { ReviewQueuePage } from "../features/review-queue";
import { ScenePage } from "../features/scene";
import { ScenesPage } from "../features/scenes";
import { StatsPage } from "../features/stats";
import { UploadPage } from "../features/upload";
import { queryClient } from "../lib/query";

function Shell() {
  return (
    <RequireAuth>
      <header className="top">
        <Link to="/" className="brand">
          Modomo
        </Link>
        <nav>
          <NavLink to="/" end>
            Datasets
          </NavLink>
          <NavLink to="/stats">Stats</NavLink>
        </nav>
        <WhoAmI />
      </header>
      <Outlet />
    </RequireAuth>
  );
}

export function App() {
  return (
    <QueryClientProvider client={queryClient}>
      <BrowserRouter basename={import.meta.env.BASE_URL.replace(/\/$/, "")}>
        <Routes>
          <Route path="/signin" element={<SignInPage />} />
          <Route element={<Shell />}>
            <Route index element={<DatasetsPage />} />
            <Route path="datasets/:datasetId" element={<DatasetLayout />}>
              <Route index element={<Navigate to="scenes" replace />} />
              <Route path="scenes" element={<ScenesPage />} />
              <Route path="upload" element={<UploadPage />} />
              <Route path="review" element={<ReviewQueuePage />} />
              <Route path="jobs" element={<JobsPage />} />
              <Route path="stats" element={<StatsPage />} />
            </Route>
            <Route path="jobs/:jobId" element={<JobPage />} />
            <Route path="scenes/:sceneId" element={<ScenePage />} />
            <Route path="stats" element={<main><StatsPage /></main>} />
            <Route path="*" element={<main><h1>Not found</h1><Link to="/">Datasets</Link></main>} />
          </Route>
        </Routes>
      </BrowserRouter>
    </QueryClientProvider>
  );
}
